//! `cargo xtask build-with-plugins` on real input: three plugin crates packed by real
//! tools (`cargo package`, `git archive`, `tar czf`), one served over HTTP and listed in
//! the config, one submitted to the management API of a running kneedeep (so that it
//! comes from the datastore), one dropped into the plugins folder. The built binary must
//! then serve each plugin's API and UI, and report where each came from.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
const TOKEN: &str = "build-test-token";

/// The repository: `git status` must read the same after a build.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Writes a plugin crate named `name` whose API answers `GET /<name>` with `answer`
/// (Rust expression of type String), with extra `[dependencies]` lines.
fn plugin_crate(parent: &Path, name: &str, answer: &str, dependencies: &str) -> PathBuf {
    let root = parent.join(name);
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("ui")).unwrap();
    let type_name: String = name[..1].to_uppercase() + &name[1..];
    let manifest = format!(
        "[package]\nname = \"kneedeep-plugin-{name}\"\nversion = \"0.3.0\"\nedition = \"2024\"\n\
         description = \"The {name} plugin\"\nlicense = \"MIT\"\n\n\
         [dependencies]\nkneedeep = \"0.1\"\n{dependencies}"
    );
    std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
    let source = format!(
        "//! The {name} plugin of the build test.\n\n\
         use kneedeep::prelude::*;\n\n\
         /// The {name} plugin, built from an archive.\n\
         #[derive(Plugin)]\n\
         #[plugin(name = \"{name}\", api = Api, ui = \"ui\")]\n\
         pub struct {type_name};\n\n\
         /// Its API.\n#[derive(Default)]\npub struct Api;\n\n\
         #[OpenApi]\nimpl Api {{\n    \
             /// Answers.\n    \
             #[oai(path = \"/{name}\", method = \"get\")]\n    \
             async fn answer(&self, text: Query<Option<String>>) -> PlainText<String> {{\n        \
                 let text = text.0.unwrap_or_default();\n        \
                 PlainText({answer})\n    \
             }}\n}}\n",
    );
    std::fs::write(root.join("src/lib.rs"), source).unwrap();
    std::fs::write(
        root.join("ui/index.html"),
        format!("<!DOCTYPE html><title>{name}</title><h1>the {name} page</h1>\n"),
    )
    .unwrap();
    root
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a tool");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Serves the files of `folder` over HTTP on a free port, one thread per connection.
fn serve_files(folder: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let folder = folder.clone();
            std::thread::spawn(move || answer_file(stream, &folder));
        }
    });
    format!("http://{address}")
}

fn answer_file(mut stream: TcpStream, folder: &Path) {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let file = folder.join(path.trim_start_matches('/'));
    let response = match std::fs::read(&file) {
        Ok(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            [head.into_bytes(), body].concat()
        }
        Err(_) => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                .to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

/// `cargo xtask build-with-plugins` in `project`; returns its stderr (cargo's report).
fn build(project: &Path, target_dir: &Path) -> String {
    let output = Command::new(XTASK)
        .current_dir(project)
        .args(["build-with-plugins", "--debug", "--work-dir"])
        .arg(project.join("work"))
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "build-with-plugins failed:\n{stderr}"
    );
    stderr
}

/// The nested builds' own target folder, kept between runs (they cannot share the
/// outer one, whose lock `cargo test` holds).
fn nested_target_dir() -> PathBuf {
    repository().join("target/nested")
}

/// A running `dist/kneedeep`, killed when dropped.
struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(project: &Path) -> Running {
    let mut child = Command::new(project.join("dist/kneedeep"))
        .current_dir(project)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dist/kneedeep");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let url: String = line[at + "listening on ".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                let _ = sender.send(url);
            }
        }
    });
    let base = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("dist/kneedeep listens");
    Running { child, base }
}

/// A blocking HTTP request: (status, body).
fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).unwrap();
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The number of crates cargo compiled, from its report.
fn compiled(report: &str) -> Vec<String> {
    report
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Compiling "))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn plugins_from_the_config_the_datastore_and_the_folder_become_one_binary() {
    let git_status_before = run(Command::new("git")
        .arg("-C")
        .arg(repository())
        .args(["status", "--porcelain"]));
    let project = tempfile::tempdir().unwrap();
    let project = project.path();
    let crates = project.join("crates");
    let served = project.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::create_dir_all(project.join("plugins")).unwrap();

    // `weather`, packed by `cargo package`, uses a crates.io crate the framework does not.
    let weather = plugin_crate(
        &crates,
        "weather",
        "format!(\"{:x}\", md5::compute(text))",
        "md5 = \"0.7\"\n",
    );
    let framework = repository().join("framework");
    let macros = repository().join("macros");
    run(Command::new(env!("CARGO"))
        .current_dir(&weather)
        .args(["package", "--no-verify", "--allow-dirty", "--target-dir"])
        .arg(project.join("package-target"))
        .arg("--config")
        .arg(format!(
            "patch.crates-io.kneedeep.path={:?}",
            framework.display().to_string()
        ))
        .arg("--config")
        .arg(format!(
            "patch.crates-io.kneedeep-macros.path={:?}",
            macros.display().to_string()
        )));
    std::fs::copy(
        project.join("package-target/package/kneedeep-plugin-weather-0.3.0.crate"),
        served.join("weather-0.3.0.crate"),
    )
    .unwrap();

    // `clock`, packed by `git archive`, is submitted through the management API.
    let clock = plugin_crate(&crates, "clock", "format!(\"tick {text}\")", "");
    let git = |args: &[&str]| {
        run(Command::new("git")
            .current_dir(&clock)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.org"])
            .args(args))
    };
    git(&["init", "--quiet"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "clock"]);
    let archive = served.join("clock.tar.gz");
    run(Command::new("git")
        .current_dir(&clock)
        .args(["archive", "--prefix=clock/", "--format=tar.gz", "-o"])
        .arg(&archive)
        .arg("HEAD"));

    // `dice`, packed by `tar czf`, is dropped into the plugins folder.
    plugin_crate(
        &crates,
        "dice",
        "format!(\"rolled {}\", text.len() % 6 + 1)",
        "",
    );
    run(Command::new("tar")
        .current_dir(&crates)
        .arg("czf")
        .arg(project.join("plugins/dice.tar.gz"))
        .arg("dice"));

    let base = serve_files(served.clone());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[datastore]\nurl = \"sqlite://data/kneedeep.db\"\n\n\
         [manage]\ntoken = \"{TOKEN}\"\n\n[[plugin_sources]]\nurl = \"{base}/weather-0.3.0.crate\"\n"
    );
    std::fs::write(project.join("kneedeep.toml"), config).unwrap();

    // First build: the config's and the folder's plugins; the datastore does not exist yet.
    let first = build(project, &nested_target_dir());
    assert!(first.contains("does not exist yet"), "{first}");
    let lock = std::fs::read_to_string(project.join("plugins.lock")).unwrap();
    assert!(
        lock.contains("weather-0.3.0.crate") && lock.contains("dice.tar.gz"),
        "{lock}"
    );

    {
        let server = start(project);
        let source = format!("{{\"url\": \"{base}/clock.tar.gz\"}}");
        let (status, body) = http(
            "POST",
            &format!("{}/manage/sources", server.base),
            Some(&source),
        );
        assert_eq!(status, 201, "{body}");
    }

    // Second build: the datastore's source joins; only it and the generated crate compile.
    let second = build(project, &nested_target_dir());
    let recompiled = compiled(&second);
    assert_eq!(
        recompiled
            .iter()
            .filter(|name| name.as_str() != "kneedeep-plugin-clock"
                && name.as_str() != "kneedeep-with-plugins")
            .count(),
        0,
        "only the new plugin and the generated crate are compiled: {recompiled:?}"
    );

    let server = start(project);
    let (status, body) = http(
        "GET",
        &format!("{}/plugins/weather/api/weather?text=abc", server.base),
        None,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "900150983cd24fb0d6963f7d28e17f72")
    );
    let (status, body) = http(
        "GET",
        &format!("{}/plugins/clock/api/clock?text=now", server.base),
        None,
    );
    assert_eq!((status, body.as_str()), (200, "tick now"));
    let (status, body) = http(
        "GET",
        &format!("{}/plugins/dice/api/dice?text=abc", server.base),
        None,
    );
    assert_eq!((status, body.as_str()), (200, "rolled 4"));
    for name in ["weather", "clock", "dice"] {
        let (status, page) = http("GET", &format!("{}/plugins/{name}/ui/", server.base), None);
        assert_eq!(status, 200);
        assert!(page.contains(&format!("the {name} page")), "{page}");
    }

    let (status, build) = http("GET", &format!("{}/manage/build", server.base), None);
    assert_eq!(status, 200);
    let build: serde_json::Value = serde_json::from_str(&build).unwrap();
    let sources: Vec<(String, String, bool)> = build["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plugin| {
            (
                plugin["name"].as_str().unwrap().to_owned(),
                plugin["source"].as_str().unwrap().to_owned(),
                plugin["sha256"].as_str().is_some_and(|sha| sha.len() == 64),
            )
        })
        .collect();
    let expected = [
        ("clock", "datastore"),
        ("dice", "folder"),
        ("weather", "config"),
    ]
    .map(|(name, source)| (name.to_owned(), source.to_owned(), true));
    assert_eq!(sources, expected);

    let listed = run(Command::new(project.join("dist/kneedeep")).arg("plugins"));
    for name in ["clock", "dice", "weather"] {
        assert!(listed.contains(name), "{listed}");
    }

    let git_status_after = run(Command::new("git")
        .arg("-C")
        .arg(repository())
        .args(["status", "--porcelain"]));
    assert_eq!(
        git_status_after, git_status_before,
        "the source tree is left as it was"
    );
}
