//! The load generator: wrk, run as a child process, and what its report says.
//!
//! wrk is a well-known C load generator with a fixed set of connections and an event loop
//! per thread, so it needs less CPU per request than the servers it measures; a client
//! written here on tokio would compete with the server for the same two cores, and its
//! own costs would be ours to explain.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// One wrk run: how many connections, how long, which CPU, and an optional Lua script.
pub(super) struct Load<'a> {
    pub(super) url: &'a str,
    pub(super) connections: u32,
    pub(super) duration: Duration,
    pub(super) cpu: Option<usize>,
    pub(super) script: Option<&'a Path>,
}

/// What a wrk run reported.
#[derive(Debug, Clone, Default)]
pub(super) struct Report {
    pub(super) requests_per_sec: f64,
    pub(super) p99: Duration,
    pub(super) requests: u64,
    /// Connect, read, write and timeout errors together.
    pub(super) socket_errors: u64,
    /// Responses that were not 2xx or 3xx.
    pub(super) non_success: u64,
    /// What the script printed, line by line.
    pub(super) script_output: Vec<String>,
    /// The whole report, for an error message.
    pub(super) text: String,
}

/// Fails with how to install wrk when it is missing.
pub(super) fn require() -> anyhow::Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => bail!(
            "the HTTP benchmarks need wrk, which is not installed \
             (Debian and Ubuntu: apt-get install wrk; macOS: brew install wrk)"
        ),
    }
}

impl Load<'_> {
    /// Runs wrk to its end and parses its report.
    pub(super) fn run(&self) -> anyhow::Result<Report> {
        let mut command = match self.cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string(), "wrk"]);
                taskset
            }
            None => Command::new("wrk"),
        };
        let threads = self.cpu.map_or(2, |_| 1).min(self.connections);
        command
            .arg(format!("--threads={threads}"))
            .arg(format!("--connections={}", self.connections))
            .arg(format!("--duration={}s", self.duration.as_secs().max(1)))
            .arg("--timeout=5s")
            .arg("--latency");
        if let Some(script) = self.script {
            command.arg("--script").arg(script);
        }
        command.arg(self.url);

        let output = command.output().context("run wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse(&stdout).with_context(|| format!("read wrk's report:\n{stdout}"))
    }
}

/// Reads the parts of wrk's text report that the benchmarks use.
fn parse(text: &str) -> anyhow::Result<Report> {
    let mut report = Report {
        text: text.to_owned(),
        ..Report::default()
    };
    let mut p99 = None;
    let mut rate = None;

    for line in text.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("99%") {
            p99 = Some(duration(value.trim())?);
        } else if let Some(value) = line.strip_prefix("Requests/sec:") {
            rate = Some(value.trim().parse()?);
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_success = value.trim().parse()?;
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            report.socket_errors = counts
                .split(',')
                .filter_map(|count| count.split_whitespace().last())
                .map(str::parse::<u64>)
                .sum::<Result<u64, _>>()?;
        } else if let Some((requests, _)) = line.split_once(" requests in ") {
            report.requests = requests.trim().parse()?;
        } else if let Some(script_line) = line.strip_prefix("script: ") {
            report.script_output.push(script_line.to_owned());
        }
    }

    report.p99 = p99.context("no 99th percentile")?;
    report.requests_per_sec = rate.context("no Requests/sec")?;
    Ok(report)
}

/// A wrk duration: `812.00us`, `1.50ms`, `2.01s`, `1.00m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("unknown unit in {text:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 5s test @ http://127.0.0.1:18081/plugins/hello/api/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   542.00us  300.00us   7.51ms   90.00%
    Req/Sec    52.08k     3.01k   60.00k    70.00%
  Latency Distribution
     50%  542.00us
     75%  600.00us
     90%  800.00us
     99%    1.50ms
  259095 requests in 5.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  51819.00
Transfer/sec:      8.00MB
script: status 200 259078
script: status 404 17
";

    #[test]
    fn reads_the_numbers_of_a_report() {
        let report = parse(REPORT).unwrap();
        assert_eq!(report.requests, 259_095);
        assert!((report.requests_per_sec - 51_819.0).abs() < 1e-9);
        assert_eq!(report.p99, Duration::from_micros(1500));
        assert_eq!(report.socket_errors, 3);
        assert_eq!(report.non_success, 17);
        assert_eq!(report.script_output, ["status 200 259078", "status 404 17"]);
    }

    #[test]
    fn a_report_without_a_rate_is_an_error() {
        let error = parse("  1 threads and 32 connections\n     99%    1.50ms\n").unwrap_err();
        assert!(error.to_string().contains("Requests/sec"), "{error}");
    }

    #[test]
    fn reads_each_unit() {
        assert_eq!(duration("812.00us").unwrap(), Duration::from_micros(812));
        assert_eq!(duration("2.00s").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1.00m").unwrap(), Duration::from_secs(60));
        assert!(duration("3.00parsecs").is_err());
    }
}
