//! Load with faults, on loopback: the stock binary under wrk at the highest rate the
//! machine sustains for a minute, while one thread toggles `notes` 200 times (100
//! unloads, 100 loads) and another writes 100 MiB through `files` into the datastore.
//! Nothing may answer 5xx, no connection may fail, and memory must come back to within
//! 10% of where it started.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::process::{self, Kind, Server, TOKEN};
use super::wrk::{self, Load};
use super::{Measure, Row, http_client, report_table};

/// The plugin toggled; wrk reads from it as well as from `hello`, which stays loaded.
const TOGGLED: &str = "notes";

/// Toggles: unloads and loads together.
const TOGGLES: usize = 200;

/// Values written, of one MiB each.
const WRITES: usize = 100;

/// How long the server idles before its memory is read: past one upkeep of the metrics
/// recorder (5 s), which empties the histograms' sample buffers.
const SETTLE: Duration = Duration::from_secs(6);

/// wrk's script: each connection alternates between hello and the toggled plugin, and
/// every thread counts the statuses it saw, which `done` prints as `script: status N C`,
/// and apart from them the toggled plugin's refusals while unloaded (a 404 whose body is
/// the gate's), printed as `script: refusals C`. A 404 from anything else is a status.
const SCRIPT: &str = r#"
local threads = {}
local paths = { "/plugins/hello/api/hello", "/plugins/notes/api/notes" }
local refusal = "plugin 'notes' is not loaded"

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  refusals = 0
  turn = 0
end

function request()
  turn = turn + 1
  return wrk.format("GET", paths[turn % #paths + 1])
end

function response(status, headers, body)
  if status == 404 and body and string.find(body, refusal, 1, true) then
    refusals = refusals + 1
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  local refused = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
    refused = refused + thread:get("refusals")
  end
  for status, count in pairs(total) do
    io.write(string.format("script: status %d %d\n", status, count))
  end
  io.write(string.format("script: refusals %d\n", refused))
end
"#;

/// What one fault run saw.
struct Outcome {
    report: wrk::Report,
    answers: Answers,
    toggles: usize,
    written: usize,
    rss_cold: u64,
    rss_before: u64,
    rss_after: u64,
}

/// Runs the faults and prints what they saw.
pub(super) fn run(quick: bool) -> anyhow::Result<()> {
    wrk::require()?;
    let binary = process::build_stock_and_bare()?.join("kneedeep");
    let warm_up = Duration::from_secs(if quick { 3 } else { 10 });
    let duration = Duration::from_secs(if quick { 10 } else { 60 });

    let shipped = fault_run(&binary, warm_up, duration)?;

    let mib = |kib: u64| kib as f64 / 1024.0;
    let refusals = shipped.answers.refusals;
    let server_errors = |outcome: &Outcome| -> u64 {
        outcome
            .answers
            .statuses
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, count)| count)
            .sum()
    };
    report_table(
        "kneedeep",
        &[
            Row {
                what: format!(
                    "requests/s over {} s, 64 connections, hello and {TOGGLED} in turn \
                     ({} requests; {refusals} refused with 404 while {TOGGLED} was unloaded)",
                    duration.as_secs(),
                    shipped.report.requests
                ),
                ours: shipped.report.requests_per_sec,
                baseline: None,
                measure: Measure::Info,
            },
            Row {
                what: format!("{TOGGLED} unloaded or loaded, each answered 200"),
                ours: shipped.toggles as f64,
                baseline: None,
                measure: Measure::AtLeast(TOGGLES as f64),
            },
            Row {
                what: "MiB written to the datastore through `files`, each answered 2xx".to_owned(),
                ours: shipped.written as f64,
                baseline: None,
                measure: Measure::AtLeast(WRITES as f64),
            },
            Row {
                what: "responses 5xx".to_owned(),
                ours: server_errors(&shipped) as f64,
                baseline: None,
                measure: Measure::AtMost(0.0),
            },
            Row {
                what: "connection errors (connect, read, write, timeout)".to_owned(),
                ours: shipped.report.socket_errors as f64,
                baseline: None,
                measure: Measure::AtMost(0.0),
            },
            Row {
                what: format!(
                    "resident memory {} s after the run, MiB (baseline: before it, after a \
                     {} s warm-up with a tenth of the faults)",
                    SETTLE.as_secs(),
                    warm_up.as_secs()
                ),
                ours: mib(shipped.rss_after),
                baseline: Some(mib(shipped.rss_before)),
                measure: Measure::RatioAtMost(1.10),
            },
            Row {
                what: "the same, before any request (baseline: at start)".to_owned(),
                ours: mib(shipped.rss_after),
                baseline: Some(mib(shipped.rss_cold)),
                measure: Measure::Info,
            },
        ],
    );
    Ok(())
}

/// One run: start the binary, warm it up with the load and a tenth of the faults, then
/// the load with all the toggles and the writes for `duration`.
fn fault_run(binary: &Path, warm_up: Duration, duration: Duration) -> anyhow::Result<Outcome> {
    let folder = tempfile::tempdir()?;
    let script = folder.path().join("statuses.lua");
    std::fs::write(&script, SCRIPT)?;
    // Unpinned: the run is at the highest rate the whole machine sustains.
    let server = Server::start(
        binary,
        Kind::Kneedeep {
            folder: folder.path(),
            env: &[],
        },
        "",
        None,
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let rss_cold = server.rss_kib()?;

    // A warm-up of the same load with a tenth of the faults: what memory the first of
    // each kind of request takes for good (code paged in, connection buffers, the
    // SQLite page caches of the datastore's connections, allocator pools) is not what
    // the faults are checked for; whether they leave memory behind is.
    let url = server.url("/");
    let load = |duration| Load {
        url: &url,
        connections: 64,
        duration,
        cpu: None,
        script: Some(&script),
    };
    let faults = |duration, toggles, writes| {
        std::thread::scope(|scope| {
            let load = scope.spawn(|| load(duration).run());
            let toggled = scope.spawn(|| toggle(&server, toggles, duration));
            let written = scope.spawn(|| write(&server, writes, duration));
            let report = load
                .join()
                .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
            let toggled = toggled
                .join()
                .map_err(|_| anyhow::anyhow!("toggle thread panicked"))??;
            let written = written
                .join()
                .map_err(|_| anyhow::anyhow!("write thread panicked"))??;
            anyhow::Ok((report, toggled, written))
        })
    };
    faults(warm_up, TOGGLES / 10, WRITES / 10)?;
    std::thread::sleep(SETTLE);
    let rss_before = server.rss_kib()?;

    let (report, toggles, written) = faults(duration, TOGGLES, WRITES)?;

    std::thread::sleep(SETTLE);
    let rss_after = server.rss_kib()?;

    let answers = Answers::parse(&report.script_output)?;
    let unexpected: Vec<String> = answers
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200 && **status < 500)
        .map(|(status, count)| format!("{count} × {status}"))
        .collect();
    if !unexpected.is_empty() {
        bail!(
            "the load saw statuses other than 200, {TOGGLED}'s 404 while unloaded, and 5xx: {}",
            unexpected.join(", ")
        );
    }
    Ok(Outcome {
        report,
        answers,
        toggles,
        written,
        rss_cold,
        rss_before,
        rss_after,
    })
}

/// Unloads and loads the toggled plugin, `times` in all (an even number, so that it ends
/// loaded), spread over `duration`; how many answered 200.
fn toggle(server: &Server, times: usize, duration: Duration) -> anyhow::Result<usize> {
    let client = http_client()?;
    let pause = duration / times as u32;
    let started = Instant::now();
    let mut done = 0;
    for turn in 0..times {
        let action = if turn % 2 == 0 { "unload" } else { "load" };
        let url = server.url(&format!("/manage/plugins/{TOGGLED}/{action}"));
        let response = client.post(&url).bearer_auth(TOKEN).send()?;
        if response.status() != 200 {
            bail!("POST {url} answered {}", response.status());
        }
        done += 1;
        sleep_until(started + pause * (turn as u32 + 1));
    }
    Ok(done)
}

/// Writes `values` values of one MiB through `files`, spread over `duration`; how many
/// MiB were accepted.
fn write(server: &Server, values: usize, duration: Duration) -> anyhow::Result<usize> {
    let client = http_client()?;
    let pause = duration / values as u32;
    let started = Instant::now();
    let mut written = 0;
    for index in 0..values {
        let value: Vec<u8> = (0..1 << 20).map(|byte| (byte ^ index) as u8).collect();
        let url = server.url(&format!("/plugins/files/api/files/value-{index:03}"));
        let response = client
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body(value)
            .send()?;
        if !response.status().is_success() {
            bail!("PUT {url} answered {}", response.status());
        }
        written += 1;
        sleep_until(started + pause * (index as u32 + 1));
    }
    Ok(written)
}

fn sleep_until(deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// What wrk's script counted.
struct Answers {
    /// Responses by status, the toggled plugin's refusals aside.
    statuses: BTreeMap<u16, u64>,
    /// 404s from the toggled plugin's gate while it was unloaded.
    refusals: u64,
}

impl Answers {
    /// Reads the script's `status <code> <count>` and `refusals <count>` lines.
    fn parse(lines: &[String]) -> anyhow::Result<Self> {
        let mut statuses = BTreeMap::new();
        let mut refusals = None;
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["status", status, count] => {
                    statuses.insert(status.parse()?, count.parse()?);
                }
                ["refusals", count] => refusals = Some(count.parse()?),
                _ => {}
            }
        }
        let Some(refusals) = refusals else {
            bail!("wrk's script reported no count of refusals");
        };
        if statuses.is_empty() {
            bail!("wrk's script reported no statuses");
        }
        Ok(Self { statuses, refusals })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_apart_from_statuses() {
        let lines = ["status 200 900", "status 404 3", "refusals 97"].map(str::to_owned);

        let answers = Answers::parse(&lines).unwrap();

        assert_eq!(answers.refusals, 97);
        assert_eq!(answers.statuses, BTreeMap::from([(200, 900), (404, 3)]));
    }

    #[test]
    fn a_script_that_counted_no_refusals_is_an_error() {
        let lines = ["status 200 900".to_owned()];

        let error = Answers::parse(&lines).err().unwrap();

        assert!(error.to_string().contains("refusals"), "{error}");
    }
}
