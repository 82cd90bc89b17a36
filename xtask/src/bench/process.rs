//! A server under benchmark: a child process on a free loopback port, optionally pinned to
//! one CPU, with its own working folder; how long it took to become ready, and its memory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to answer its readiness URL before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The management token the benchmarks give kneedeep.
pub(super) const TOKEN: &str = "bench-token";

/// A running server; killed when dropped.
pub(super) struct Server {
    child: Child,
    pub(super) address: SocketAddr,
    /// How long from spawning the process to its first ready answer.
    pub(super) startup: Duration,
}

/// What to start: a kneedeep binary in `folder` (its datastore and log live there), with
/// `env` added to its environment; or the bare baseline, which takes its address as its
/// argument.
pub(super) enum Kind<'a> {
    Kneedeep {
        folder: &'a Path,
        env: &'a [(&'a str, &'a str)],
    },
    Bare,
}

impl Server {
    /// Starts `binary` and waits until it is ready: `/readyz` for kneedeep, the route
    /// `probe` for the bare server. `cpu` pins it with `taskset`.
    pub(super) fn start(
        binary: &Path,
        kind: Kind<'_>,
        probe: &str,
        cpu: Option<usize>,
    ) -> anyhow::Result<Server> {
        let address = free_address()?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string()]).arg(binary);
                taskset
            }
            None => Command::new(binary),
        };
        command.stdin(Stdio::null()).stderr(Stdio::inherit());
        let ready_path = match kind {
            Kind::Kneedeep { folder, env } => {
                // The request log is on, at info, and written to a file as in production.
                let log = std::fs::File::create(folder.join("kneedeep.log"))?;
                command
                    .current_dir(folder)
                    .arg("serve")
                    .env("KNEEDEEP_SERVER__LISTEN", format!("\"{address}\""))
                    .env("KNEEDEEP_MANAGE__TOKEN", format!("\"{TOKEN}\""))
                    .env("KNEEDEEP_LOG__LEVEL", "\"info\"")
                    .envs(env.iter().copied())
                    .stdout(log);
                "/readyz"
            }
            Kind::Bare => {
                command.arg(address.to_string()).stdout(Stdio::null());
                probe
            }
        };

        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut server = Server {
            child,
            address,
            startup: Duration::ZERO,
        };
        server.wait_ready(ready_path)?;
        server.startup = started.elapsed();
        Ok(server)
    }

    /// `http://<address><path>`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Polls `path` every millisecond until it answers 200.
    fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited before it was ready ({status})");
            }
            if http_status(self.address, path).is_ok_and(|status| status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("the server was not ready within {READY_TIMEOUT:?}")
    }

    /// The process's resident memory now, in KiB.
    pub(super) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("read the server's /proc status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in the server's /proc status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nobody listens on now.
fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?)
}

/// The status of a plain `GET path` on a fresh connection: enough HTTP/1.1 for a probe,
/// and no client library's own start-up in the time measured.
fn http_status(address: SocketAddr, path: &str) -> anyhow::Result<u16> {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let status = std::str::from_utf8(&head[9..12])?.parse()?;
    Ok(status)
}

/// `taskset` when this machine has it and at least two CPUs: the server then gets one
/// CPU and the load generator the other, so that neither steals the other's time.
pub(super) fn pinning() -> Option<(usize, usize)> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    (cpus >= 2 && has_taskset).then_some((0, 1))
}

/// Builds the stock `kneedeep` binary and the bare baseline in release, together, so
/// that both sections that use them share one build; `target/release` of the repository.
pub(super) fn build_stock_and_bare() -> anyhow::Result<PathBuf> {
    let workspace = workspace()?;
    let target = workspace.join("target");
    let status = super::cargo()
        .current_dir(&workspace)
        .args(["build", "--release", "--quiet", "-p", "kneedeep-app"])
        .args(["--bin", "kneedeep", "--example", "bare_hello"])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("building the servers failed ({status})");
    }
    Ok(target.join("release"))
}

/// The repository's root folder.
pub(super) fn workspace() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("the repository")
}
