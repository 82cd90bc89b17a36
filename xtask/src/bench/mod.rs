//! `cargo xtask bench`: runs the benchmarks and prints their tables of ratios, each
//! measurement taken side by side with its baseline in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Smaller sizes and counts, for a quick look (the numbers in BENCHMARKS.md are
    /// from a run without it).
    #[arg(long)]
    quick: bool,

    /// Run one section only.
    #[arg(long, value_enum)]
    only: Option<Section>,
}

/// The sections of the benchmark report.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Section {
    /// The datastore against a plain file and against sqlx.
    Datastore,
    /// `build-with-plugins` against a no-op cargo build.
    Build,
}

/// Runs each benchmark; a benchmark that fails fails the command.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let wanted = |section| args.only.is_none_or(|only| only == section);
    if wanted(Section::Datastore) {
        report("## Datastore\n");
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
        if args.quick {
            command.arg("--quick");
        }
        let status = command.status().context("run cargo")?;
        if !status.success() {
            bail!("the datastore benchmark failed ({status})");
        }
    }
    if wanted(Section::Build) {
        report("\n## Build\n");
        build_benchmark()?;
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

/// `build-with-plugins` run again with nothing changed, against a no-op `cargo build
/// --release` of the stock app; then one plugin added, and what cargo compiled for it.
fn build_benchmark() -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the repository")?;
    let project = workspace.join("target/kneedeep-bench");
    let plugins = project.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    bench_plugin(&plugins, "alpha")?;

    // Both warmed first: what is measured is the run with nothing to do.
    let stock = || {
        let mut command = cargo();
        command.current_dir(workspace).args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kneedeep-app",
        ]);
        run_timed(command)
    };
    stock()?;
    build_with_plugins(&project)?;
    let (no_op, _) = stock()?;
    let (unchanged, _) = build_with_plugins(&project)?;

    let ratio = unchanged.as_secs_f64() / no_op.as_secs_f64();
    report("| measurement | build-with-plugins | baseline | ratio | target | met |");
    report("| --- | --- | --- | --- | --- | --- |");
    report(&format!(
        "| re-run with nothing changed, s (baseline: no-op `cargo build --release`) | {:.2} | {:.2} | {ratio:.2} | <= 2 | {} |",
        unchanged.as_secs_f64(),
        no_op.as_secs_f64(),
        if ratio <= 2.0 { "yes" } else { "NO" },
    ));

    bench_plugin(&plugins, "beta")?;
    let (added, output) = build_with_plugins(&project)?;
    let compiled: Vec<&str> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let expected = ["kneedeep-plugin-beta", "kneedeep-with-plugins"];
    let only_those =
        compiled.len() == expected.len() && expected.iter().all(|name| compiled.contains(name));
    report(&format!(
        "| one plugin added: crates compiled ({}), in {:.1} s | {} | | | 2: the plugin and the generated crate, then the link | {} |",
        compiled.join(", "),
        added.as_secs_f64(),
        compiled.len(),
        if only_those { "yes" } else { "NO" },
    ));
    Ok(())
}

/// Runs `build-with-plugins` (this very binary) on the benchmark project.
fn build_with_plugins(project: &Path) -> anyhow::Result<(Duration, String)> {
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
