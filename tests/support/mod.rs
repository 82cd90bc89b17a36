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
    // `cargo test --workspace` unifies reqwest's features with the build tool's, whose
    // TLS needs a crypto provider installed before any client is built, even one that
    // only speaks plain HTTP to loopback.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build an HTTP client")
}

/// The PostgreSQL the tests use: `KNEEDEEP_TEST_POSTGRES_URL`, else the local one.
fn postgres_admin_url() -> String {
    std::env::var("KNEEDEEP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh PostgreSQL database for one test, dropped when the test ends.
pub(crate) struct PostgresDatabase {
    /// Its URL, for `[datastore] url`.
    pub(crate) url: String,
    name: String,
}

impl PostgresDatabase {
    /// Creates a database named after the test. Without a reachable PostgreSQL this says
    /// that the test is skipped and returns `None`, except under CI (`CI` set), where
    /// PostgreSQL must be there and its absence fails the test.
    pub(crate) async fn create(test: &str) -> Option<PostgresDatabase> {
        use sqlx::Connection;

        let admin_url = postgres_admin_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(error) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL is required under CI but not reachable at {admin_url}: {error}")
            }
            Err(error) => {
                eprintln!("skipped {test}: PostgreSQL not reachable at {admin_url}: {error}");
                return None;
            }
        };

        let name = format!("kd_{test}_{}", std::process::id());
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .expect("drop a leftover test database");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");

        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(PostgresDatabase {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl PostgresDatabase {
    /// Ends every connection to this database, as a database restart would.
    pub(crate) async fn terminate_connections(&self) {
        use sqlx::Connection;

        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("connect to PostgreSQL");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&self.name)
            .execute(&mut admin)
            .await
            .expect("terminate the connections");
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of
        // its own with a runtime of its own does it.
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                    .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
