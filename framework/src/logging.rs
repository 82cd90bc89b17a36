//! The logging service: one tracing subscriber for the process, `pretty` or `json`, with
//! level directives from `[log] level`. Events inside a plugin's request or hook span
//! carry `plugin=<name>` because those spans are opened by the framework, and a
//! directive naming a plugin (`info,notes=debug`) applies to everything inside them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogConfig, LogFormat};

/// Checks `[log] level` without installing anything.
pub(crate) fn check(config: &LogConfig, plugins: &[&str]) -> Result<(), ConfigError> {
    filter(config, plugins).map(drop)
}

/// Installs the process-wide subscriber. Call once, before anything logs.
pub(crate) fn init(config: &LogConfig, plugins: &[&str]) -> Result<(), ConfigError> {
    let filter = filter(config, plugins)?;
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

fn filter(config: &LogConfig, plugins: &[&str]) -> Result<EnvFilter, ConfigError> {
    let directives = plugin_directives(&config.level, plugins);
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|error| ConfigError {
            plugin: None,
            key: "log.level".to_owned(),
            reason: format!(
                "'{}' is not a valid tracing directive: {error}",
                config.level
            ),
        })
}

/// Adds, for each directive `<plugin>=<level>`, one that matches events inside spans
/// whose `plugin` field is that plugin: a plugin's name is not its crate's target.
fn plugin_directives(level: &str, plugins: &[&str]) -> String {
    let mut directives: Vec<String> = level.split(',').map(str::to_owned).collect();
    for directive in level.split(',') {
        let Some((target, level)) = directive.trim().split_once('=') else {
            continue;
        };
        if plugins.contains(&target) {
            directives.push(format!("[{{plugin={target}}}]={level}"));
        }
    }
    directives.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_directive_also_matches_its_spans() {
        let directives = plugin_directives("info,notes=debug,hyper=warn", &["notes", "files"]);
        assert_eq!(
            directives,
            "info,notes=debug,hyper=warn,[{plugin=notes}]=debug"
        );
    }

    #[test]
    fn a_bad_level_names_the_key() {
        let config = LogConfig {
            level: "info,=nonsense=".to_owned(),
            ..LogConfig::default()
        };
        let error = check(&config, &[]).unwrap_err();
        assert_eq!(error.key, "log.level");
    }
}
