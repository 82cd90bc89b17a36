//! The whole flow on real input, as a user runs it. The stock app is started with the
//! README's run command on the embedded SQLite default, and a plugin source is submitted
//! to its management API (so it comes from the datastore); an archive is dropped into
//! the plugins folder; a third is served over HTTP and listed in the config. The three
//! are packed by real tools (`cargo package`, `git archive`, `tar czf`).
//! `cargo xtask build-with-plugins` makes one binary of them; it serves each plugin's
//! API, document, docs and UI, reports where each came from, and keeps an unload across
//! a restart.

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

/// `cargo xtask build-with-plugins` in `project`, in release as a user runs it; returns
/// its stderr (cargo's report).
fn build(project: &Path, target_dir: &Path) -> String {
    let output = Command::new(XTASK)
        .current_dir(project)
        .args(["build-with-plugins", "--work-dir"])
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

/// Packs the folder `name` of `parent` with `tar czf` into `archive`.
fn tar_czf(parent: &Path, name: &str, archive: &Path) {
    run(Command::new("tar")
        .current_dir(parent)
        .arg("czf")
        .arg(archive)
        .arg(name));
}

/// Drops `crate_root` packed as `archive` into the plugins folder, runs a build that
/// must fail, takes the archive out again, and returns the build's stderr.
fn failed_build(project: &Path, crate_root: &Path, archive: &str) -> String {
    let dropped = project.join("plugins").join(archive);
    let name = crate_root.file_name().unwrap().to_str().unwrap();
    tar_czf(crate_root.parent().unwrap(), name, &dropped);
    let output = Command::new(XTASK)
        .current_dir(project)
        .args(["build-with-plugins", "--work-dir"])
        .arg(project.join("work"))
        .arg("--target-dir")
        .arg(nested_target_dir())
        .output()
        .expect("run xtask");
    std::fs::remove_file(&dropped).unwrap();
    assert!(
        !output.status.success(),
        "the build of {archive} should fail"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
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

/// Stops `server` and starts `dist/kneedeep` again on the same data.
fn restart(server: Running, project: &Path) -> Running {
    drop(server);
    start(project)
}

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Starts `dist/kneedeep` in `project`.
fn start(project: &Path) -> Running {
    let mut command = Command::new(project.join("dist/kneedeep"));
    command.current_dir(project);
    start_command(command)
}

/// Starts the stock app with the README's run command, `cargo run --release`, in
/// `project` (its config and data folder), building it in the nested target folder.
fn start_stock_app(project: &Path) -> Running {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(project)
        .args(["run", "--release", "--quiet", "--manifest-path"])
        .arg(repository().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(nested_target_dir());
    start_command(command)
}

fn start_command(mut command: Command) -> Running {
    // Its own process group, so that stopping it also stops what `cargo run` started.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kneedeep");
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
    // The stock app may have to be compiled first.
    let base = receiver
        .recv_timeout(Duration::from_secs(1800))
        .expect("kneedeep listens");
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

#[test]
fn plugins_from_the_config_the_datastore_and_the_folder_become_one_binary_that_serves_them() {
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
    tar_czf(&crates, "dice", &project.join("plugins/dice.tar.gz"));

    let base = serve_files(served.clone());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[datastore]\nurl = \"sqlite://data/kneedeep.db\"\n\n\
         [manage]\ntoken = \"{TOKEN}\"\n\n[[plugin_sources]]\nurl = \"{base}/weather-0.3.0.crate\"\n"
    );
    std::fs::write(project.join("kneedeep.toml"), config).unwrap();

    // The stock app, started as the README says, keeps a source in its datastore.
    {
        let stock = start_stock_app(project);
        let source = format!("{{\"url\": \"{base}/clock.tar.gz\"}}");
        let (status, body) = http(
            "POST",
            &format!("{}/manage/sources", stock.base),
            Some(&source),
        );
        assert_eq!(status, 201, "{body}");
    }

    // A fourth, scaffolded by `cargo xtask new-plugin` into the plugins folder, builds and
    // loads as it is.
    run(Command::new(XTASK).current_dir(project).args([
        "new-plugin",
        "greeter",
        "--dir",
        "plugins",
    ]));

    build(project, &nested_target_dir());
    let lock = std::fs::read_to_string(project.join("plugins.lock")).unwrap();
    for archive in ["weather-0.3.0.crate", "clock.tar.gz", "dice.tar.gz"] {
        assert!(lock.contains(archive), "{archive} is locked: {lock}");
    }

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
        let (status, document) = http(
            "GET",
            &format!("{}/plugins/{name}/openapi.json", server.base),
            None,
        );
        assert_eq!(status, 200);
        assert!(
            document.contains(&format!("/plugins/{name}/api")),
            "{document}"
        );
        let (status, docs) = http("GET", &format!("{}/plugins/{name}/docs", server.base), None);
        assert_eq!(status, 200);
        assert!(
            docs.contains(&format!("/plugins/{name}/openapi.json")),
            "{docs}"
        );
    }

    let (status, body) = http(
        "GET",
        &format!("{}/plugins/greeter/api/greeting?name=ada", server.base),
        None,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"hello, ada"}"#)
    );

    let (status, manifest) = http("GET", &format!("{}/manage/build", server.base), None);
    assert_eq!(status, 200);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let sources: Vec<(String, String, bool)> = manifest["plugins"]
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
        ("clock", "datastore", true),
        ("dice", "folder", true),
        ("greeter", "in-tree", false),
        ("weather", "config", true),
    ]
    .map(|(name, source, hashed)| (name.to_owned(), source.to_owned(), hashed));
    assert_eq!(sources, expected);

    let listed = run(Command::new(project.join("dist/kneedeep")).arg("plugins"));
    for name in ["clock", "dice", "weather"] {
        assert!(listed.contains(name), "{listed}");
    }

    // Unloaded: gone from its routes, the shell and the merged document, across a restart.
    let (status, _) = http(
        "POST",
        &format!("{}/manage/plugins/dice/unload", server.base),
        None,
    );
    assert_eq!(status, 200);
    let server = restart(server, project);
    for path in ["api/dice", "openapi.json", "docs", "ui/"] {
        let (status, _) = http("GET", &format!("{}/plugins/dice/{path}", server.base), None);
        assert_eq!(status, 404, "/plugins/dice/{path} after the restart");
    }
    let (_, shell) = http("GET", &format!("{}/", server.base), None);
    assert!(
        !shell.contains("/plugins/dice/") && shell.contains("/plugins/clock/"),
        "{shell}"
    );
    let (_, merged) = http("GET", &format!("{}/openapi.json", server.base), None);
    assert!(
        !merged.contains("/plugins/dice/") && merged.contains("/plugins/clock/"),
        "{merged}"
    );

    let (status, _) = http(
        "POST",
        &format!("{}/manage/plugins/dice/load", server.base),
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = http(
        "GET",
        &format!("{}/plugins/dice/api/dice?text=ab", server.base),
        None,
    );
    assert_eq!((status, body.as_str()), (200, "rolled 3"));

    drop(server);

    // A changed archive is a changed plugin: rebuilt, whatever its files' mtimes say.
    plugin_crate(
        &crates,
        "dice",
        "format!(\"rolled again {}\", text.len())",
        "",
    );
    tar_czf(&crates, "dice", &project.join("plugins/dice.tar.gz"));
    build(project, &nested_target_dir());
    let server = start(project);
    let (status, body) = http(
        "GET",
        &format!("{}/plugins/dice/api/dice?text=ab", server.base),
        None,
    );
    assert_eq!((status, body.as_str()), (200, "rolled again 2"));
    drop(server);

    // A failing build names the source and the reason, and leaves dist/kneedeep alone.
    let binary = std::fs::read(project.join("dist/kneedeep")).unwrap();
    let escaping = plugin_crate(
        &crates,
        "escape",
        "text",
        "local = { path = \"../local\" }\n",
    );
    let message = failed_build(project, &escaping, "escape.tar.gz");
    assert!(
        message.contains("escape.tar.gz") && message.contains("is a path dependency"),
        "{message}"
    );
    let broken = plugin_crate(&crates, "broken", "not_a_function(text)", "");
    let message = failed_build(project, &broken, "broken.tar.gz");
    assert!(
        message.contains("cargo build of the generated crate failed"),
        "{message}"
    );
    assert!(
        std::fs::read(project.join("dist/kneedeep")).unwrap() == binary,
        "dist/kneedeep is unchanged"
    );

    let git_status_after = run(Command::new("git")
        .arg("-C")
        .arg(repository())
        .args(["status", "--porcelain"]));
    assert_eq!(
        git_status_after, git_status_before,
        "the source tree is left as it was"
    );
}
