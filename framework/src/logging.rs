//! The logging service: one tracing subscriber for the process, `pretty` or `json`, with
//! level directives from `[log] level`. Events inside a plugin's request or hook span
//! carry `plugin=<name>` because those spans are opened by the framework.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogConfig, LogFormat};

/// Checks `[log] level` without installing anything.
pub(crate) fn check(config: &LogConfig) -> Result<(), ConfigError> {
    filter(config).map(drop)
}

/// Installs the process-wide subscriber. Call once, before anything logs.
pub(crate) fn init(config: &LogConfig) -> Result<(), ConfigError> {
    let filter = filter(config)?;
    let ansi = std::io::stdout().is_terminal();

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // A second init (as in tests that start the server twice) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}

fn filter(config: &LogConfig) -> Result<EnvFilter, ConfigError> {
    EnvFilter::builder()
        .parse(&config.level)
        .map_err(|error| ConfigError {
            plugin: None,
            key: "log.level".to_owned(),
            reason: format!(
                "'{}' is not a valid tracing directive: {error}",
                config.level
            ),
        })
}
