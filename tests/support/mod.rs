//! Shared by the end-to-end tests: start the real `kneedeep` binary in a fresh folder on a
//! free port, talk to it over HTTP, and stop it the way an operator would.

#![allow(dead_code, reason = "each test file uses the part of this it needs")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The `kneedeep` binary cargo built for these tests.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_kneedeep");

/// A running `kneedeep serve`, killed when dropped.
pub(crate) struct Kneedeep {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// The working folder: its config, data folder and anything a test puts there.
    pub(crate) dir: TempDir,
    output: Arc<Mutex<String>>,
}

impl Kneedeep {
    /// Starts `kneedeep` in a new folder whose `kneedeep.toml` is `config`, listening on
    /// a free loopback port unless the config says otherwise.
    pub(crate) fn start(config: &str) -> Kneedeep {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        Self::start_in(dir, config)
    }

    /// Like [`Kneedeep::start`], in a folder a test prepared (or kept from an earlier run).
    pub(crate) fn start_in(dir: TempDir, config: &str) -> Kneedeep {
        Self::start_with_env(dir, config, &[])
    }

    /// Like [`Kneedeep::start_in`], with extra environment variables.
    pub(crate) fn start_with_env(dir: TempDir, config: &str, env: &[(&str, &str)]) -> Kneedeep {
        let config = if config.contains("[server]") {
            config.to_owned()
        } else {
            format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{config}")
        };
        std::fs::write(dir.path().join("kneedeep.toml"), config).expect("write kneedeep.toml");

        let mut child = Command::new(BINARY)
            .current_dir(dir.path())
            .env_remove("KNEEDEEP_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kneedeep");

        let output = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        collect(
            child.stdout.take().expect("stdout"),
            output.clone(),
            Some(address_tx),
        );
        collect(child.stderr.take().expect("stderr"), output.clone(), None);

        let base = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kneedeep did not start listening; its output:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        Kneedeep {
            child: Some(child),
            base,
            dir,
            output,
        }
    }

    /// The full URL of `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the process printed so far.
    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit.
    pub(crate) fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration, TempDir) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");

        loop {
            if let Some(status) = child.try_wait().expect("wait for kneedeep") {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
                return (status, started.elapsed(), dir);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "kneedeep did not exit within {limit:?} of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kneedeep {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Copies a child's output into `sink`, and sends the first `listening on` address.
fn collect(
    stream: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    address: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let (Some(sender), Some(at)) = (&address, line.find("listening on http://")) {
                // Pretty lines end the URL with a space, JSON lines with a quote.
                let url: String = line[at + "listening on ".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = sender.send(url);
            }
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
}

/// Runs `kneedeep ARGS` in `dir` to completion: (exit code, stdout, stderr).
pub(crate) fn run_command(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .current_dir(dir)
        .env_remove("KNEEDEEP_CONFIG")
        .output()
        .expect("run kneedeep");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An HTTP client that follows no redirects, so tests see them.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build an HTTP client")
}
