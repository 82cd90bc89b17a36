//! The configuration service: `kneedeep.toml` layered under `KNEEDEEP_<SECTION>__<KEY>`
//! environment variables (figment), and each plugin's typed `[plugins.<name>]` table.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plugin::ParsedConfig;

/// The config file read when neither `--config` nor `KNEEDEEP_CONFIG` names one.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "kneedeep.toml";

/// The whole configuration of a kneedeep process. Every field has a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[datastore]`.
    #[serde(default)]
    pub datastore: DatastoreConfig,
    /// `[manage]`.
    #[serde(default)]
    pub manage: ManageConfig,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[[plugin_sources]]`: archives that `cargo xtask build-with-plugins` fetches.
    #[serde(default)]
    pub plugin_sources: Vec<PluginSourceConfig>,
    /// `[plugins.<name>]`: each plugin's own table, checked against its config type.
    #[serde(default)]
    pub plugins: BTreeMap<String, serde_json::Value>,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Folder for the SQLite datastore and the generated management token.
    /// Default `kneedeep-data`.
    pub data_dir: PathBuf,
    /// Seconds that in-flight requests get to finish on SIGINT or SIGTERM. Default 10.
    pub shutdown_timeout_secs: u64,
    /// The largest JSON request body a plugin's API or the management API reads, in
    /// bytes; past it the answer is 413 before anything is parsed. Default 1 MiB.
    pub max_json_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("kneedeep-data"),
            shutdown_timeout_secs: 10,
            max_json_body_bytes: 1 << 20,
        }
    }
}

/// `[datastore]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatastoreConfig {
    /// `sqlite://PATH` or `postgres://...`. Default `sqlite://kneedeep-data/kneedeep.db`.
    pub url: String,
    /// The largest value a put may store, in bytes. Default 4 GiB.
    pub max_value_bytes: u64,
}

impl Default for DatastoreConfig {
    fn default() -> Self {
        DatastoreConfig {
            url: "sqlite://kneedeep-data/kneedeep.db".to_owned(),
            max_value_bytes: 4 << 30,
        }
    }
}

/// `[manage]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManageConfig {
    /// The bearer token of the management API. Default: generated at first start.
    pub token: Option<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
    /// tracing directives, e.g. `info,notes=debug`. Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// One `[[plugin_sources]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSourceConfig {
    /// `https://`, `http://` or `file://` URL of a plugin archive.
    pub url: String,
    /// The archive's expected sha256, 64 hex digits.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A configuration mistake: where it is and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The plugin whose table is wrong, if the mistake is in `[plugins.<name>]`.
    pub plugin: Option<String>,
    /// The dotted key, e.g. `max_note_bytes` or `server.listen`; empty for the whole file.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(plugin) = &self.plugin {
            write!(f, "plugin '{plugin}': ")?;
        }
        if !self.key.is_empty() {
            write!(f, "key '{}': ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// What is wrong with a value, in the words of the other config errors; figment's own
/// wording quotes a list of expected values twice.
fn describe(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;

    let one_of = |expected: &[&str]| {
        let quoted: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
        quoted.join(", ")
    };
    match kind {
        Kind::UnknownVariant(found, expected) => {
            format!("`{found}` is not one of {}", one_of(expected))
        }
        Kind::UnknownField(found, []) => {
            format!("unknown key `{found}`")
        }
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown key `{found}`, expected one of {}",
                one_of(expected)
            )
        }
        other => other.to_string(),
    }
}

/// Where the bad value came from: the config file, or else the environment variable
/// that sets its key.
fn source_of(error: &figment::Error) -> String {
    let file = error
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.source.as_ref())
        .and_then(figment::Source::file_path);
    match file {
        Some(path) => format!("in {}", path.display()),
        None => format!(
            "from the environment variable KNEEDEEP_{}",
            error.path.join("__").to_uppercase()
        ),
    }
}

/// Where the config file is: the explicit path, else `KNEEDEEP_CONFIG`, else the default.
/// The second value says whether a missing file is an error (it is when one was named).
pub(crate) fn config_path(explicit: Option<&Path>) -> (PathBuf, bool) {
    if let Some(path) = explicit {
        return (path.to_owned(), true);
    }
    if let Some(path) = std::env::var_os("KNEEDEEP_CONFIG") {
        return (PathBuf::from(path), true);
    }
    (PathBuf::from(DEFAULT_CONFIG_FILE), false)
}

impl Config {
    /// Reads the config file (a missing default file means all defaults) and then the
    /// `KNEEDEEP_<SECTION>__<KEY>` environment variables on top.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, must_exist) = config_path(explicit);
        if must_exist && !path.is_file() {
            return Err(ConfigError {
                plugin: None,
                key: String::new(),
                reason: format!("config file {} does not exist", path.display()),
            });
        }

        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&path))
            // Only `KNEEDEEP_<SECTION>__<KEY>`: other KNEEDEEP_ variables (the config's
            // path, the tests' settings) are not config keys.
            .merge(
                Env::prefixed("KNEEDEEP_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            );
        figment.extract().map_err(|error| ConfigError {
            plugin: None,
            key: error.path.join("."),
            reason: format!("{} ({})", describe(&error.kind), source_of(&error)),
        })
    }

    /// The mistakes in the framework's own values that their types cannot catch: a
    /// datastore URL kneedeep cannot open, an empty management token, a plugin source
    /// the build would refuse. `check-config` reports them with the rest; `serve` too.
    pub fn check_values(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut error = |key: String, reason: String| {
            errors.push(ConfigError {
                plugin: None,
                key,
                reason,
            });
        };

        let url = self.datastore.url.as_str();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.split('?').next().unwrap_or_default().is_empty() {
                error(
                    "datastore.url".to_owned(),
                    format!("{url:?} names no database file: use sqlite://PATH"),
                );
            }
        } else if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            error(
                "datastore.url".to_owned(),
                format!("{url:?} is neither sqlite://PATH nor postgres://..."),
            );
        }

        if self
            .manage
            .token
            .as_deref()
            .is_some_and(|token| token.trim().is_empty())
        {
            error(
                "manage.token".to_owned(),
                "it is empty: set a token, or remove the key to have one generated".to_owned(),
            );
        }

        for (index, source) in self.plugin_sources.iter().enumerate() {
            if let Err(reason) = crate::manager::check_source(&source.url, source.sha256.as_deref())
            {
                error(format!("plugin_sources[{index}]"), reason.to_string());
            }
        }
        errors
    }

    /// The initial state of a plugin from its `enabled` key (default `true`).
    pub fn plugin_enabled(&self, plugin: &str) -> Result<bool, ConfigError> {
        let Some(enabled) = self
            .plugins
            .get(plugin)
            .and_then(|table| table.get("enabled"))
        else {
            return Ok(true);
        };
        enabled.as_bool().ok_or_else(|| ConfigError {
            plugin: Some(plugin.to_owned()),
            key: "enabled".to_owned(),
            reason: format!("expected true or false, found {enabled}"),
        })
    }

    /// A plugin's table without the framework's own `enabled` key, for its config type.
    pub fn plugin_table(&self, plugin: &str) -> serde_json::Value {
        let mut table = match self.plugins.get(plugin) {
            Some(serde_json::Value::Object(table)) => table.clone(),
            _ => serde_json::Map::new(),
        };
        table.remove("enabled");
        serde_json::Value::Object(table)
    }

    /// Tables under `[plugins]` that name no compiled-in plugin.
    pub fn unknown_plugin_tables<'a>(
        &'a self,
        known: &'a [&str],
    ) -> impl Iterator<Item = ConfigError> + 'a {
        self.plugins
            .keys()
            .filter(|name| !known.contains(&name.as_str()))
            .map(|name| ConfigError {
                plugin: Some(name.clone()),
                key: String::new(),
                reason: format!(
                    "no such plugin is compiled in (compiled in: {})",
                    known.join(", ")
                ),
            })
    }
}

/// The config of a plugin that declares none: any key in its table is unknown.
#[doc(hidden)]
#[derive(Debug, Deserialize)]
pub struct NoConfig {}

/// Parses a plugin's table into `C`, reporting wrong types and unknown keys by path.
#[doc(hidden)]
pub fn parse_config<C: DeserializeOwned + Send + Sync + 'static>(
    table: &serde_json::Value,
) -> Result<ParsedConfig, Vec<ConfigError>> {
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let deserializer = serde_ignored::Deserializer::new(table, &mut record_unknown);
    let parsed: Result<C, _> = serde_path_to_error::deserialize(deserializer);

    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|key| ConfigError {
            plugin: None,
            key,
            reason: "unknown key".to_owned(),
        })
        .collect();
    match parsed {
        Ok(config) if errors.is_empty() => return Ok(Arc::new(config)),
        Ok(_) => {}
        Err(error) => {
            let mut key = error.path().to_string().trim_start_matches('.').to_owned();
            let reason = error.into_inner().to_string();
            // serde reports a missing field at its parent; name the field itself.
            let missing = reason
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'));
            if let Some(field) = missing {
                key = if key.is_empty() {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
            }
            errors.push(ConfigError {
                plugin: None,
                key,
                reason,
            });
        }
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Deserialize, PartialEq)]
    struct Sample {
        #[serde(default = "default_limit")]
        limit: u64,
        #[serde(default)]
        title: String,
    }

    fn default_limit() -> u64 {
        10
    }

    fn parse(table: serde_json::Value) -> Result<Sample, Vec<String>> {
        match parse_config::<Sample>(&table) {
            Ok(config) => Ok(config
                .downcast_ref::<Sample>()
                .cloned()
                .expect("parsed as Sample")),
            Err(errors) => Err(errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn empty_table_takes_the_type_defaults() {
        let parsed = parse(serde_json::json!({}));
        assert_eq!(
            parsed,
            Ok(Sample {
                limit: 10,
                title: String::new()
            })
        );
    }

    #[test]
    fn wrong_type_names_the_key_and_the_expectation() {
        let errors = parse(serde_json::json!({"limit": "many"})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("key 'limit': invalid type: string \"many\""),
            "{errors:?}"
        );
        assert!(errors[0].contains("expected u64"), "{errors:?}");
    }

    #[test]
    fn unknown_keys_are_all_reported() {
        let errors = parse(serde_json::json!({"limt": 3, "colour": "red"})).unwrap_err();
        assert_eq!(
            errors,
            vec!["key 'colour': unknown key", "key 'limt': unknown key"]
        );
    }

    #[test]
    fn plugin_without_config_rejects_any_key() {
        let errors = parse_config::<NoConfig>(&serde_json::json!({"x": 1})).unwrap_err();
        assert_eq!(errors[0].to_string(), "key 'x': unknown key");
    }

    #[test]
    fn a_bad_value_in_the_file_names_the_key_the_choices_and_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("kneedeep.toml");
        std::fs::write(&path, "[log]\nformat = \"jsn\"\n").unwrap();

        let error = Config::load(Some(&path)).unwrap_err();
        assert_eq!(error.key, "log.format");
        assert_eq!(
            error.reason,
            format!(
                "`jsn` is not one of `pretty`, `json` (in {})",
                path.display()
            )
        );
    }

    #[test]
    fn a_bad_value_not_from_the_file_names_its_environment_variable() {
        let error = figment::Figment::new()
            .merge(Toml::string("[log]\nlevel = \"info\""))
            .merge(figment::providers::Serialized::default("log.format", "jsn"))
            .extract::<Config>()
            .unwrap_err();
        assert_eq!(
            source_of(&error),
            "from the environment variable KNEEDEEP_LOG__FORMAT"
        );
    }

    #[test]
    fn enabled_is_the_frameworks_key_not_the_plugins() {
        let mut config = Config::default();
        config.plugins.insert(
            "notes".into(),
            serde_json::json!({"enabled": false, "limit": 3}),
        );

        assert_eq!(config.plugin_enabled("notes"), Ok(false));
        assert_eq!(config.plugin_enabled("hello"), Ok(true));
        assert_eq!(
            config.plugin_table("notes"),
            serde_json::json!({"limit": 3})
        );
    }

    #[test]
    fn enabled_must_be_a_bool() {
        let mut config = Config::default();
        config
            .plugins
            .insert("notes".into(), serde_json::json!({"enabled": "yes"}));

        let error = config.plugin_enabled("notes").unwrap_err();
        assert_eq!(
            error.to_string(),
            "plugin 'notes': key 'enabled': expected true or false, found \"yes\""
        );
    }
}
