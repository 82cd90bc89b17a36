//! The cost of the stack per request: hello's `GET` through kneedeep (gate, request span,
//! metrics, request log at info) against the same handler on a bare poem server
//! (`app/examples/bare_hello.rs`), with the same wrk and the same connections.

use std::time::Duration;

use anyhow::{Context, bail};

use super::process::{self, Kind, Server};
use super::wrk::{self, Load, Report};
use super::{Measure, Row, median, report_table};

/// The route both servers answer.
const ROUTE: &str = "/plugins/hello/api/hello";

/// Connections wrk keeps open, in every run of this section and of the scale section.
const CONNECTIONS: u32 = 32;

/// Measures both servers in alternating rounds and prints the ratios of the medians.
pub(super) fn run(quick: bool) -> anyhow::Result<()> {
    wrk::require()?;
    let release = process::build_stock_and_bare()?;

    let pinning = process::pinning();
    let server_cpu = pinning.map(|(server, _)| server);
    let (text_folder, json_folder, quiet_folder) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let kneedeep = |folder: &tempfile::TempDir, env| {
        let kind = Kind::Kneedeep {
            folder: folder.path(),
            env,
        };
        Server::start(&release.join("kneedeep"), kind, ROUTE, server_cpu)
    };
    let full = kneedeep(&text_folder, &[])?;
    let json = kneedeep(&json_folder, &[("KNEEDEEP_LOG__FORMAT", "\"json\"")])?;
    let quiet = kneedeep(&quiet_folder, &[("KNEEDEEP_LOG__LEVEL", "\"warn\"")])?;
    let bare = Server::start(
        &release.join("examples/bare_hello"),
        Kind::Bare,
        ROUTE,
        server_cpu,
    )?;

    let (rounds, seconds) = if quick { (2, 2) } else { (7, 5) };
    let [bare_runs, full_runs, json_runs, quiet_runs] = alternate(
        [&bare, &full, &json, &quiet],
        ROUTE,
        rounds,
        seconds,
        pinning,
    )?;

    let rate = |runs: &[Report]| median(runs.iter().map(|run| run.requests_per_sec));
    let p99 = |runs: &[Report]| median(runs.iter().map(|run| run.p99.as_secs_f64() * 1e3));
    let setup = match pinning {
        Some((server, load)) => format!("server on CPU {server}, wrk on CPU {load}"),
        None => "unpinned".to_owned(),
    };
    report_table(
        "kneedeep",
        &[
            Row {
                what: format!(
                    "`GET {ROUTE}`, requests/s, median of {rounds} × {seconds} s \
                     ({CONNECTIONS} connections, {setup}; request log as text, the \
                     default; baseline: the handler on bare poem)"
                ),
                ours: rate(&full_runs),
                baseline: Some(rate(&bare_runs)),
                measure: Measure::RatioAtLeast(0.85),
            },
            Row {
                what: format!("`GET {ROUTE}`, p99 latency ms, median of {rounds}"),
                ours: p99(&full_runs),
                baseline: Some(p99(&bare_runs)),
                measure: Measure::RatioAtMost(1.25),
            },
            Row {
                what: "the same, requests/s, with the request log as JSON".to_owned(),
                ours: rate(&json_runs),
                baseline: Some(rate(&bare_runs)),
                measure: Measure::Info,
            },
            Row {
                what: "the same, p99 latency ms, with the request log as JSON".to_owned(),
                ours: p99(&json_runs),
                baseline: Some(p99(&bare_runs)),
                measure: Measure::Info,
            },
            Row {
                what: "the same, requests/s, without the request log (`log.level = \"warn\"`)"
                    .to_owned(),
                ours: rate(&quiet_runs),
                baseline: Some(rate(&bare_runs)),
                measure: Measure::Info,
            },
        ],
    );
    Ok(())
}

/// Loads each server's `route` for a second, then for `seconds` in each of `rounds`
/// rounds that take the servers in turn, so that a slow patch of the machine falls on
/// all of them; each server's runs. Every other round takes them in reverse order, so
/// that no server always runs first, or always right after a given one.
pub(super) fn alternate<const N: usize>(
    servers: [&Server; N],
    route: &str,
    rounds: usize,
    seconds: u64,
    pinning: Option<(usize, usize)>,
) -> anyhow::Result<[Vec<Report>; N]> {
    let load = |server: &Server, seconds: u64| {
        let url = server.url(route);
        let report = Load {
            url: &url,
            connections: CONNECTIONS,
            duration: Duration::from_secs(seconds),
            cpu: pinning.map(|(_, load)| load),
            script: None,
        }
        .run()?;
        check_clean(&report).with_context(|| format!("load on {url}"))?;
        anyhow::Ok(report)
    };

    for server in servers {
        load(server, 1)?;
    }
    let mut runs = [(); N].map(|()| Vec::with_capacity(rounds));
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..N).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            runs[index].push(load(servers[index], seconds)?);
        }
    }
    Ok(runs)
}

/// A benchmark run is only worth its numbers if every request succeeded.
pub(super) fn check_clean(report: &Report) -> anyhow::Result<()> {
    if report.socket_errors > 0 || report.non_success > 0 {
        bail!(
            "the load run had {} socket errors and {} responses that were not 2xx or 3xx:\n{}",
            report.socket_errors,
            report.non_success,
            report.text
        );
    }
    Ok(())
}
