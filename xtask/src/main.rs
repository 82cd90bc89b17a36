//! `cargo xtask`: the kneedeep build tool. Each command is one module; `main` only parses
//! the command line and prints the error chain of a command that failed.

mod bench;
mod build_with_plugins;
mod codegen;
mod fetch;
mod lock;
mod new_plugin;
mod sources;
mod unpack;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The kneedeep build tool.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The kneedeep build tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build one release binary, `dist/kneedeep`, with every plugin from the config's
    /// `[[plugin_sources]]`, the source URLs kept in the datastore, and the plugins folder.
    BuildWithPlugins(build_with_plugins::Args),
    /// Scaffold a plugin crate (API, UI page, config type, a test) in the plugins folder.
    NewPlugin(new_plugin::Args),
    /// Run the benchmarks in release mode and print each measurement beside its
    /// baseline, with their ratio and target.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildWithPlugins(args) => build_with_plugins::run(&args),
        Command::NewPlugin(args) => new_plugin::run(&args),
        Command::Bench(args) => bench::run(&args),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "the error report of a command")]
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
