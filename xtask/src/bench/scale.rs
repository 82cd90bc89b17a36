//! A hundred plugins against one: two binaries made by `build-with-plugins` from generated
//! plugin crates, compared on the same route for throughput, time to ready and idle
//! memory; and the Swagger UI assets, which must exist once however many plugins there are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::overhead::alternate;
use super::process::{self, Kind, Server};
use super::wrk::{self, Report};
use super::{Measure, Row, bench_plugin, build_with_plugins, http_client, median, report_table};

/// The plugin both builds have, and the route measured on it.
const ROUTE: &str = "/plugins/p001/api/p001";

/// A file of the Swagger UI bundle, from which a sample is looked for in the binary.
const SWAGGER_BUNDLE: &str = "framework/assets/static/swagger-ui/swagger-ui-bundle.js";

/// Builds both binaries, then measures them side by side.
pub(super) fn run(quick: bool) -> anyhow::Result<()> {
    wrk::require()?;
    let workspace = process::workspace()?;
    let root = workspace.join("target/kneedeep-bench-scale");
    let plugins = if quick { 20 } else { 100 };
    let one = build(&root.join("one"), 1)?;
    let many = build(&root.join("many"), plugins)?;

    let pinning = process::pinning();
    let server_cpu = pinning.map(|(server, _)| server);
    let (starts, rounds, seconds) = if quick { (3, 2, 2) } else { (7, 5, 5) };
    let one_folder = tempfile::tempdir()?;
    let many_folder = tempfile::tempdir()?;
    let (one_server, one_startup) = start_repeatedly(&one, one_folder.path(), starts, server_cpu)?;
    let (many_server, many_startup) =
        start_repeatedly(&many, many_folder.path(), starts, server_cpu)?;

    // Idle memory: after a request to the route, before any load.
    let client = http_client()?;
    let idle = |server: &Server| {
        let url = server.url(ROUTE);
        let status = client.get(&url).send()?.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}");
        }
        std::thread::sleep(Duration::from_secs(1));
        server.rss_kib()
    };
    let one_rss = idle(&one_server)?;
    let many_rss = idle(&many_server)?;

    let [one_runs, many_runs] =
        alternate([&one_server, &many_server], ROUTE, rounds, seconds, pinning)?;
    let rate = |runs: &[Report]| median(runs.iter().map(|run| run.requests_per_sec));

    let copies = swagger_copies(&workspace.join(SWAGGER_BUNDLE), &many)?;
    let docs_page = docs_page_bytes(&client, &many_server, plugins)?;

    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    report_table(
        &format!("{plugins} plugins"),
        &[
            Row {
                what: format!(
                    "`GET {ROUTE}`, requests/s, median of {rounds} × {seconds} s (baseline: 1 plugin)"
                ),
                ours: rate(&many_runs),
                baseline: Some(rate(&one_runs)),
                measure: Measure::RatioAtLeast(0.95),
            },
            Row {
                what: format!(
                    "start to ready (`/readyz` 200), ms, median of {starts} starts after the \
                     first (baseline: 1 plugin)"
                ),
                ours: ms(many_startup),
                baseline: Some(ms(one_startup)),
                measure: Measure::AtMost(300.0),
            },
            Row {
                what: "idle resident memory, MiB (baseline: 1 plugin)".to_owned(),
                ours: many_rss as f64 / 1024.0,
                baseline: Some(one_rss as f64 / 1024.0),
                measure: Measure::RatioAtMost(1.5),
            },
            Row {
                what: "copies of the Swagger UI bundle in the binary".to_owned(),
                ours: copies as f64,
                baseline: None,
                measure: Measure::AtMost(1.0),
            },
            Row {
                what: "one plugin's docs page, bytes (it links the shared bundle)".to_owned(),
                ours: docs_page as f64,
                baseline: None,
                measure: Measure::AtMost(4096.0),
            },
        ],
    );
    Ok(())
}

/// A project with `count` generated plugins `p001`, `p002`, ..., built with
/// `build-with-plugins`; the binary it made.
fn build(project: &Path, count: usize) -> anyhow::Result<PathBuf> {
    let plugins = project.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    for index in 1..=count {
        bench_plugin(&plugins, &format!("p{index:03}"))?;
    }
    build_with_plugins(project).with_context(|| format!("build {count} generated plugins"))
}

/// Starts the binary `starts` times in `folder`: the first start creates the datastore
/// (its migrations are not what is measured), the rest are timed. The last server is
/// left running; the median time to ready.
fn start_repeatedly(
    binary: &Path,
    folder: &Path,
    starts: usize,
    cpu: Option<usize>,
) -> anyhow::Result<(Server, Duration)> {
    let first = Server::start(binary, Kind::Kneedeep { folder, env: &[] }, "", cpu)?;
    drop(first);

    let mut times = Vec::new();
    let mut server = None;
    for _ in 1..starts {
        // The previous server is stopped before the next one starts.
        drop(server.take());
        let started = Server::start(binary, Kind::Kneedeep { folder, env: &[] }, "", cpu)?;
        times.push(started.startup.as_secs_f64());
        server = Some(started);
    }
    let server = server.context("no timed start")?;
    Ok((server, Duration::from_secs_f64(median(times))))
}

/// How often a 256-byte piece of the middle of the Swagger UI bundle occurs in `binary`.
fn swagger_copies(bundle: &Path, binary: &Path) -> anyhow::Result<usize> {
    let bundle = std::fs::read(bundle).with_context(|| format!("read {}", bundle.display()))?;
    let middle = bundle.len() / 2;
    let sample = bundle
        .get(middle..middle + 256)
        .context("the Swagger UI bundle is too short")?;
    let binary = std::fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    Ok(binary
        .windows(sample.len())
        .filter(|window| *window == sample)
        .count())
}

/// The size of the last plugin's docs page, which must link the shared bundle.
fn docs_page_bytes(
    client: &reqwest::blocking::Client,
    server: &Server,
    plugins: usize,
) -> anyhow::Result<usize> {
    let url = server.url(&format!("/plugins/p{plugins:03}/docs"));
    let page = client.get(&url).send()?.error_for_status()?.text()?;
    if !page.contains("/static/swagger-ui/swagger-ui-bundle.js") {
        bail!("{url} does not link the shared Swagger UI bundle");
    }
    Ok(page.len())
}
