//! The `kneedeep` commands: `serve` (the default), `plugins`, `check-config`, `--version`.
//! A binary's `main` only names the plugin crates it links and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use tracing::{error, info};

use crate::config::Config;
use crate::manager::auth::TokenOrigin;
use crate::manager::{self, Manager};
use crate::manifest::BuildManifest;
use crate::plugin::PluginDescriptor;
use crate::registry;
use crate::store::Datastore;

/// What a binary links: the plugin crates it names, and its build manifest.
#[derive(Debug, Clone, Copy)]
pub struct Linked {
    /// Crate names (`extern crate` spelling) of every plugin the binary was built with.
    pub crates: &'static [&'static str],
    /// The build manifest as JSON; `None` for a binary built by plain `cargo build`.
    pub manifest: Option<&'static str>,
}

#[derive(Parser)]
#[command(
    name = "kneedeep",
    about = "A web application made of plugins",
    disable_version_flag = true
)]
struct Cli {
    /// Print the version and the build manifest's summary.
    #[arg(long, short = 'V')]
    version: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ConfigArg),
    /// List the plugins compiled in: name, version, source, sha256.
    Plugins,
    /// Validate the config, including each plugin's table; exit 0 or print every error.
    CheckConfig(ConfigArg),
}

#[derive(clap::Args, Default)]
struct ConfigArg {
    /// The config file [default: kneedeep.toml, or KNEEDEEP_CONFIG].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Parses the command line and runs the command; the exit code says how it went.
pub fn run(linked: Linked) -> ExitCode {
    let cli = Cli::parse();
    let manifest = BuildManifest::of(linked);

    let descriptors = match registry::verify(&registry::PLUGINS, linked.crates) {
        Ok(descriptors) => descriptors,
        Err(errors) => {
            return fail(
                "the plugins linked into this binary do not match its build",
                errors,
            );
        }
    };

    if cli.version {
        return print_out(&manifest.summary());
    }
    match cli.command.unwrap_or(Command::Serve(ConfigArg::default())) {
        Command::Plugins => print_out(&manifest.table()),
        Command::CheckConfig(arg) => check_config(arg, &descriptors),
        Command::Serve(arg) => serve(arg, descriptors, manifest),
    }
}

fn check_config(arg: ConfigArg, descriptors: &[&'static PluginDescriptor]) -> ExitCode {
    let config = match Config::load(arg.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail("invalid config", [error]),
    };

    let mut errors = config.check_values();
    errors.extend(manager::check_plugin_config(descriptors, &config));
    let known: Vec<&str> = descriptors.iter().map(|d| d.name).collect();
    errors.extend(config.unknown_plugin_tables(&known));
    if let Err(error) = crate::logging::check(&config.log, &known) {
        errors.push(error);
    }
    if !errors.is_empty() {
        return fail("invalid config", errors);
    }
    print_out("config is valid")
}

fn serve(
    arg: ConfigArg,
    descriptors: Vec<&'static PluginDescriptor>,
    manifest: BuildManifest,
) -> ExitCode {
    let config = match Config::load(arg.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail("invalid config", [error]),
    };
    let mistakes = config.check_values();
    if !mistakes.is_empty() {
        return fail("invalid config", mistakes);
    }
    let names: Vec<&str> = descriptors.iter().map(|d| d.name).collect();
    let _log_writer = match crate::logging::init(&config.log, &names) {
        Ok(guard) => guard,
        Err(error) => return fail("invalid config", [error]),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail("cannot start the async runtime", [error]),
    };
    match runtime.block_on(serve_async(config, descriptors, manifest)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            fail("kneedeep stopped", [message])
        }
    }
}

async fn serve_async(
    config: Config,
    descriptors: Vec<&'static PluginDescriptor>,
    manifest: BuildManifest,
) -> Result<(), String> {
    if let Some(handle) = crate::metrics::install() {
        tokio::spawn(crate::metrics::upkeep(handle));
    }
    tokio::spawn(crate::memory::upkeep());
    let datastore = Datastore::open(&config.datastore)
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(collect_garbage(datastore.clone()));

    let manager = Manager::new(&descriptors, &config, &datastore).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("invalid config:\n  {}", lines.join("\n  "))
    })?;
    let manager = Arc::new(manager);
    manager
        .start(&config)
        .await
        .map_err(|error| format!("cannot read the plugin states: {error}"))?;
    tokio::spawn(manager::follow_changes(manager.clone(), datastore.clone()));

    let (token, origin) = manager::auth::resolve_token(&config)?;
    match origin {
        TokenOrigin::Config => info!("management API token: from the config"),
        TokenOrigin::File {
            path,
            created: true,
        } => info!(file = %path.display(), "management API token: generated into its file"),
        TokenOrigin::File {
            path,
            created: false,
        } => info!(file = %path.display(), "management API token: read from its file"),
    }

    let shutdown = shutdown_signal()?;
    let acceptor = TcpListener::bind(config.server.listen)
        .into_acceptor()
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.server.listen))?;
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .map_or_else(|| config.server.listen.to_string(), |addr| addr.to_string());
    info!(
        plugins = manager.plugins().len(),
        "listening on http://{address}"
    );

    let grace = Duration::from_secs(config.server.shutdown_timeout_secs);
    // FIXME(no timeout for slow or idle clients): poem exposes no timeout for reading a
    // request's head, and its `idle_timeout` wakes a task of its own on every read and
    // write of a connection, which would cost the request path; nor does its accept loop
    // pause when descriptors run out. The README asks for a reverse proxy in front.
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            crate::server::router(
                manager,
                datastore,
                manifest,
                &token,
                config.server.max_json_body_bytes,
            ),
            shutdown,
            Some(grace),
        )
        .await
        .map_err(|error| format!("server error: {error}"))?;

    info!("stopped");
    Ok(())
}

/// How long a staged upload may sit untouched before it counts as left by a crash.
const UPLOAD_IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// Deletes what interrupted puts left in the datastore, now and every ten minutes.
async fn collect_garbage(datastore: Datastore) {
    let mut interval = tokio::time::interval(Duration::from_secs(600));
    loop {
        interval.tick().await;
        match datastore.collect_garbage(UPLOAD_IDLE_LIMIT).await {
            Ok(0) => {}
            Ok(uploads) => info!(uploads, "removed uploads left by interrupted puts"),
            Err(error) => tracing::warn!(%error, "datastore garbage collection failed"),
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers now, before the server announces itself, and
/// returns a future that resolves on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot install the SIGTERM handler: {error}"))?;
    let interrupt = tokio::signal::ctrl_c();

    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt => info!(signal = "SIGINT", "shutting down"),
            _ = terminate.recv() => info!(signal = "SIGTERM", "shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
            info!(signal = "ctrl-c", "shutting down");
        }
    })
}

#[allow(clippy::print_stdout, reason = "command output, not logging")]
fn print_out(text: &str) -> ExitCode {
    println!("{text}");
    ExitCode::SUCCESS
}

#[allow(clippy::print_stderr, reason = "the error report of a command")]
fn fail<E: std::fmt::Display>(what: &str, errors: impl IntoIterator<Item = E>) -> ExitCode {
    eprintln!("error: {what}");
    for error in errors {
        eprintln!("  - {error}");
    }
    ExitCode::FAILURE
}
