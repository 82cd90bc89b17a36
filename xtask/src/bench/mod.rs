//! `cargo xtask bench`: runs the benchmarks and prints their tables of ratios, each
//! measurement taken side by side with its baseline in the same run.

mod build;
mod faults;
mod overhead;
mod process;
mod scale;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Smaller sizes, counts and durations, for a quick look (the numbers in
    /// BENCHMARKS.md are from a run without it).
    #[arg(long)]
    quick: bool,

    /// Run one section only.
    #[arg(long, value_enum)]
    only: Option<Section>,
}

/// The sections of the benchmark report, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Section {
    /// The datastore against a plain file and against sqlx.
    Datastore,
    /// `build-with-plugins` against a no-op cargo build.
    Build,
    /// A request through kneedeep against the same handler on bare poem (needs wrk).
    Overhead,
    /// A hundred generated plugins against one (needs wrk).
    Scale,
    /// A minute of load while a plugin is toggled and the datastore written (needs wrk).
    Faults,
}

/// Runs each benchmark; a benchmark that fails fails the command.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let wanted = |section| args.only.is_none_or(|only| only == section);
    if wanted(Section::Datastore) {
        report("## Datastore\n");
        datastore(args.quick)?;
    }
    if wanted(Section::Build) {
        report("\n## Build\n");
        build::run()?;
    }
    if wanted(Section::Overhead) {
        report("\n## Overhead per request\n");
        overhead::run(args.quick)?;
    }
    if wanted(Section::Scale) {
        report("\n## A hundred plugins\n");
        scale::run(args.quick)?;
    }
    if wanted(Section::Faults) {
        report("\n## Under load and faults\n");
        faults::run(args.quick)?;
    }
    Ok(())
}

/// The datastore benchmark is an example of the framework crate, built in release.
fn datastore(quick: bool) -> anyhow::Result<()> {
    let mut command = cargo();
    command.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "kneedeep",
        "--example",
        "bench_store",
        "--",
    ]);
    if quick {
        command.arg("--quick");
    }
    let status = command.status().context("run cargo")?;
    if !status.success() {
        bail!("the datastore benchmark failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

#[allow(clippy::print_stdout, reason = "the command's report")]
fn report(line: &str) {
    println!("{line}");
}

/// What a row's target is.
#[derive(Clone, Copy)]
enum Measure {
    /// kneedeep / baseline at least this.
    RatioAtLeast(f64),
    /// kneedeep / baseline at most this.
    RatioAtMost(f64),
    /// kneedeep's own number at least this.
    AtLeast(f64),
    /// kneedeep's own number at most this.
    AtMost(f64),
    /// Reported, with no target.
    Info,
}

/// One line of a table: what was measured, kneedeep's number, the baseline's, the target.
struct Row {
    what: String,
    ours: f64,
    baseline: Option<f64>,
    measure: Measure,
}

/// Prints `rows` as a Markdown table whose second column is headed `subject`.
fn report_table(subject: &str, rows: &[Row]) {
    report(&format!(
        "| measurement | {subject} | baseline | ratio | target | met |"
    ));
    report("| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let ratio = row.baseline.map(|baseline| row.ours / baseline);
        let (target, met) = match row.measure {
            Measure::RatioAtLeast(limit) => (
                format!("ratio >= {limit}"),
                ratio.map(|ratio| ratio >= limit),
            ),
            Measure::RatioAtMost(limit) => (
                format!("ratio <= {limit}"),
                ratio.map(|ratio| ratio <= limit),
            ),
            Measure::AtLeast(limit) => (format!(">= {}", number(limit)), Some(row.ours >= limit)),
            Measure::AtMost(limit) => (format!("<= {}", number(limit)), Some(row.ours <= limit)),
            Measure::Info => (String::new(), None),
        };
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        report(&format!(
            "| {} | {} | {} | {} | {target} | {met} |",
            row.what,
            number(row.ours),
            row.baseline.map(number).unwrap_or_default(),
            ratio.map(|ratio| format!("{ratio:.2}")).unwrap_or_default(),
        ));
    }
}

/// A number with as many decimals as its size deserves.
fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[len / 2],
        len => (values[len / 2 - 1] + values[len / 2]) / 2.0,
    }
}

/// A blocking HTTP client for the benchmarks' own requests.
fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    // Fails only when the process already has a provider, which is then used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("build the HTTP client")
}

/// Runs `build-with-plugins` (this very binary) on a benchmark project; the binary it
/// made in the project's `dist/`.
fn build_with_plugins(project: &Path) -> anyhow::Result<PathBuf> {
    build_with_plugins_timed(project)?;
    Ok(project.join("dist/kneedeep"))
}

/// Runs `build-with-plugins` on a benchmark project: how long it took, and its stderr.
fn build_with_plugins_timed(project: &Path) -> anyhow::Result<(Duration, String)> {
    let mut command = Command::new(std::env::current_exe()?);
    command.current_dir(project).args([
        "build-with-plugins",
        "--work-dir",
        "work",
        "--out",
        "dist",
    ]);
    run_timed(command)
}

/// Runs `command` to success: how long it took, and its stderr.
fn run_timed(mut command: Command) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!("{command:?} failed:\n{stderr}");
    }
    Ok((elapsed, stderr))
}

/// A minimal plugin crate folder named `name` in `plugins`.
fn bench_plugin(plugins: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let root = plugins.join(name);
    std::fs::create_dir_all(root.join("src"))?;
    let manifest = format!(
        "[package]\nname = \"kneedeep-plugin-{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nkneedeep = \"0.1\"\n"
    );
    std::fs::write(root.join("Cargo.toml"), manifest)?;
    let type_name = name[..1].to_uppercase() + &name[1..];
    let source = format!(
        "//! The {name} plugin of the build benchmark.\n\nuse kneedeep::prelude::*;\n\n\
         /// {type_name}.\n#[derive(Plugin)]\n#[plugin(name = \"{name}\", api = Api)]\npub struct {type_name};\n\n\
         /// Its API.\n#[derive(Default)]\npub struct Api;\n\n\
         #[OpenApi]\nimpl Api {{\n    /// Answers.\n    #[oai(path = \"/{name}\", method = \"get\")]\n    \
         async fn answer(&self) -> PlainText<&'static str> {{\n        PlainText(\"{name}\")\n    }}\n}}\n"
    );
    std::fs::write(root.join("src/lib.rs"), source)?;
    Ok(root)
}
