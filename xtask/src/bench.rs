//! `cargo xtask bench`: runs the benchmarks in release mode and prints their tables of
//! ratios, each measured side by side with its baseline in the same run.

use std::process::Command;

use anyhow::{Context, bail};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Smaller sizes and counts, for a quick look (the numbers in BENCHMARKS.md are
    /// from a run without it).
    #[arg(long)]
    quick: bool,
}

/// Builds and runs each benchmark program; a benchmark that fails fails the command.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
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

    #[allow(clippy::print_stdout, reason = "the command's report")]
    {
        println!("## Datastore\n");
    }
    let status = command.status().context("run cargo")?;
    if !status.success() {
        bail!("the datastore benchmark failed ({status})");
    }
    Ok(())
}
