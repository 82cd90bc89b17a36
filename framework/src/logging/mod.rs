//! The logging service: one tracing subscriber for the process, `pretty` or `json`, with
//! level directives from `[log] level`. Events inside a plugin's request or hook span
//! carry `plugin=<name>` because those spans are opened by the framework, and a
//! directive naming a plugin (`info,notes=debug`) applies to everything inside them.
//!
//! Lines go to stdout in batches, from a background thread ([`writer`]); how a line
//! reads is in [`format`]; the span requests run in and their `served` lines are in
//! [`request`]. All three are the framework's own because the request log is on every
//! request's path, where tracing-subscriber's formats, a span per request and
//! tracing-appender's queue cost more than the rest of the framework's work per request.

mod format;
mod request;
mod writer;

use std::cell::RefCell;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use self::format::{Lines, SpanFields, Style};
use self::writer::{BatchWriter, BatchWriterGuard};

use crate::config::{ConfigError, LogConfig, LogFormat};

pub(crate) use self::request::{RequestSpan, Served};

/// The writer and style of the subscriber [`init`] installed, for lines the framework
/// writes without an event.
static DIRECT: OnceLock<(BatchWriter, Style)> = OnceLock::new();

/// Checks `[log] level` without installing anything.
pub(crate) fn check(config: &LogConfig, plugins: &[&str]) -> Result<(), ConfigError> {
    filter(config, plugins).map(drop)
}

/// Installs the process-wide subscriber. Call once, before anything logs, and keep the
/// guard until the process ends: dropping it writes the lines still queued.
pub(crate) fn init(config: &LogConfig, plugins: &[&str]) -> Result<BatchWriterGuard, ConfigError> {
    let filter = filter(config, plugins)?;
    let style = match config.format {
        LogFormat::Pretty => Style::Text,
        LogFormat::Json => Style::Json,
    };
    let (writer, guard) = BatchWriter::start(std::io::stdout());

    // A second init (as in tests that start the server twice) keeps the first subscriber.
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .fmt_fields(SpanFields(style))
        .event_format(Lines(style))
        .try_init();
    if installed.is_ok() {
        let _ = DIRECT.set((writer, style));
    }
    Ok(guard)
}

/// Writes one line that `render` makes, in the installed subscriber's style, straight to
/// its writer; `false`, writing nothing, when [`init`] installed none.
fn write_direct(render: impl FnOnce(Style, &mut String) -> std::fmt::Result) -> bool {
    thread_local! {
        /// The line being rendered; its capacity is kept from line to line.
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }

    let Some((writer, style)) = DIRECT.get() else {
        return false;
    };
    LINE.with_borrow_mut(|line| {
        line.clear();
        if render(*style, line).is_ok() {
            writer.append(line.as_bytes());
        }
    });
    true
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
