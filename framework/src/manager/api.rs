//! The management API at `/manage`: every compiled-in plugin with its state, URLs and
//! source; load and unload; the plugin sources kept in the datastore; and the build
//! manifest. A poem-openapi service with its own document; the bearer token is checked
//! in front of it (`auth.rs`).

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ManagedPlugin, Manager, PluginState, SourceError};
use crate::error::ApiError;
use crate::manifest::BuildManifest;

/// The management API's handlers.
pub(crate) struct ManageApi {
    pub(crate) manager: Arc<Manager>,
    pub(crate) manifest: Arc<BuildManifest>,
}

/// A compiled-in plugin as the operator sees it.
#[derive(Object)]
#[oai(rename = "Plugin")]
struct PluginInfo {
    name: String,
    version: String,
    /// The plugin's doc comment.
    description: String,
    /// `loaded`, `unloaded` or `failed`.
    state: String,
    /// Why it failed, when `state` is `failed`.
    #[oai(nullable)]
    error: Option<String>,
    /// Its API prefix; null when its API could not be built.
    #[oai(nullable)]
    api: Option<String>,
    /// Its own OpenAPI document.
    #[oai(nullable)]
    openapi: Option<String>,
    /// Its Swagger UI.
    #[oai(nullable)]
    docs: Option<String>,
    /// Its UI; null when it has none.
    #[oai(nullable)]
    ui: Option<String>,
    /// Where its code came from.
    source: PluginSource,
}

/// Where a plugin's code came from.
#[derive(Object)]
struct PluginSource {
    /// `in-tree`, `folder`, `config` or `datastore`.
    kind: String,
    /// The archive's URL or file, where there is one.
    #[oai(nullable)]
    url: Option<String>,
    /// The archive's sha256, where there is one.
    #[oai(nullable)]
    sha256: Option<String>,
}

/// A plugin source to keep.
#[derive(Object)]
struct NewSource {
    /// An `https` or `http` URL with a host, or a `file:///` URL with a path, of a plugin
    /// archive; no credentials, spaces or control characters.
    #[oai(validator(
        pattern = r"^(?:(?i:https?)://[^/?#@:\s\x00-\x1f\x7f-\x9f][^/?#@\s\x00-\x1f\x7f-\x9f]*(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?|(?i:file):///[^\s\x00-\x1f\x7f-\x9f]+)$",
        max_length = 4096
    ))]
    url: String,
    /// The archive's sha256, to pin it: 64 hex digits.
    #[oai(nullable, validator(pattern = r"^[0-9a-fA-F]{64}$"))]
    sha256: Option<String>,
}

/// A kept plugin source.
#[derive(Object)]
#[oai(rename = "Source")]
struct SourceInfo {
    /// 16 hex digits derived from the URL.
    id: String,
    url: String,
    #[oai(nullable)]
    sha256: Option<String>,
    /// When it was added, RFC 3339.
    added: String,
}

/// What this binary was built from.
#[derive(Object)]
struct Build {
    framework_version: String,
    plugins: Vec<BuildPlugin>,
}

/// One plugin of the build.
#[derive(Object)]
struct BuildPlugin {
    name: String,
    version: String,
    #[oai(rename = "crate")]
    crate_name: String,
    /// `in-tree`, `folder`, `config` or `datastore`.
    source: String,
    #[oai(nullable)]
    url: Option<String>,
    #[oai(nullable)]
    sha256: Option<String>,
}

#[derive(ApiResponse)]
enum SourceCreated {
    /// The source is kept.
    #[oai(status = 201)]
    Created(Json<SourceInfo>),
}

#[derive(ApiResponse)]
enum SourceDeleted {
    /// The source is forgotten.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi]
impl ManageApi {
    /// Every compiled-in plugin, by name.
    #[oai(path = "/plugins", method = "get", operation_id = "listPlugins")]
    async fn list_plugins(&self) -> Json<Vec<PluginInfo>> {
        let plugins = self.manager.plugins().iter();
        Json(plugins.map(|plugin| self.info(plugin)).collect())
    }

    /// One compiled-in plugin.
    #[oai(path = "/plugins/:name", method = "get", operation_id = "getPlugin")]
    async fn get_plugin(&self, name: Path<String>) -> Result<Json<PluginInfo>, ApiError> {
        let plugin = self
            .manager
            .get(&name.0)
            .ok_or_else(|| unknown_plugin(&name.0))?;
        Ok(Json(self.info(plugin)))
    }

    /// Loads a plugin: runs its load hook, opens its routes, and records the state.
    /// Loading a loaded plugin changes nothing.
    #[oai(
        path = "/plugins/:name/load",
        method = "post",
        operation_id = "loadPlugin"
    )]
    async fn load(&self, name: Path<String>) -> Result<Json<PluginInfo>, ApiError> {
        self.set_loaded(&name.0, true).await
    }

    /// Unloads a plugin: closes its routes, runs its unload hook, and records the state.
    /// Unloading an unloaded plugin changes nothing.
    #[oai(
        path = "/plugins/:name/unload",
        method = "post",
        operation_id = "unloadPlugin"
    )]
    async fn unload(&self, name: Path<String>) -> Result<Json<PluginInfo>, ApiError> {
        self.set_loaded(&name.0, false).await
    }

    /// The plugin sources kept in the datastore, which `cargo xtask build-with-plugins`
    /// reads.
    #[oai(path = "/sources", method = "get", operation_id = "listSources")]
    async fn list_sources(&self) -> Result<Json<Vec<SourceInfo>>, ApiError> {
        let sources = self.manager.sources().list().await?;
        Ok(Json(sources.into_iter().map(source_info).collect()))
    }

    /// Keeps a plugin source URL for the next build.
    #[oai(path = "/sources", method = "post", operation_id = "addSource")]
    async fn add_source(&self, source: Json<NewSource>) -> Result<SourceCreated, ApiError> {
        let added = self
            .manager
            .sources()
            .add(&source.0.url, source.0.sha256.as_deref())
            .await;
        match added {
            Ok(source) => Ok(SourceCreated::Created(Json(source_info(source)))),
            Err(error @ (SourceError::InvalidUrl { .. } | SourceError::InvalidSha256 { .. })) => {
                Err(ApiError::bad_request(error.to_string()))
            }
            Err(error @ SourceError::Duplicate { .. }) => {
                Err(ApiError::conflict(error.to_string()))
            }
            Err(SourceError::Store(error)) => Err(error.into()),
        }
    }

    /// Forgets a plugin source.
    #[oai(
        path = "/sources/:id",
        method = "delete",
        operation_id = "deleteSource"
    )]
    async fn delete_source(&self, id: Path<String>) -> Result<SourceDeleted, ApiError> {
        match self.manager.sources().remove(&id.0).await? {
            true => Ok(SourceDeleted::Deleted),
            false => Err(ApiError::not_found(format!("no source has id '{}'", id.0))),
        }
    }

    /// What this binary was built from: the framework version and each plugin with its
    /// source and sha256.
    #[oai(path = "/build", method = "get", operation_id = "getBuild")]
    async fn build(&self) -> Json<Build> {
        let manifest = &self.manifest;
        let plugins = manifest.plugins.iter().map(|plugin| BuildPlugin {
            name: plugin.name.clone(),
            version: plugin.version.clone(),
            crate_name: plugin.crate_name.clone(),
            source: plugin.source.clone(),
            url: plugin.url.clone(),
            sha256: plugin.sha256.clone(),
        });
        Json(Build {
            framework_version: manifest.framework_version.clone(),
            plugins: plugins.collect(),
        })
    }
}

impl ManageApi {
    async fn set_loaded(&self, name: &str, loaded: bool) -> Result<Json<PluginInfo>, ApiError> {
        match self.manager.set_loaded(name, loaded).await? {
            Some(_) => {
                let plugin = self.manager.get(name).ok_or_else(|| unknown_plugin(name))?;
                Ok(Json(self.info(plugin)))
            }
            None => Err(unknown_plugin(name)),
        }
    }

    fn info(&self, plugin: &ManagedPlugin) -> PluginInfo {
        let name = plugin.name();
        let descriptor = plugin.descriptor();
        let state = plugin.state();
        let error = match &state {
            PluginState::Failed(message) => Some(message.clone()),
            _ => None,
        };
        let has_api = plugin.spec().is_some();
        let built = self
            .manifest
            .plugins
            .iter()
            .find(|built| built.name == name);

        PluginInfo {
            name: name.to_owned(),
            version: descriptor.version.to_owned(),
            description: descriptor.description.to_owned(),
            state: state.as_str().to_owned(),
            error,
            api: has_api.then(|| crate::server::api_prefix(name)),
            openapi: has_api.then(|| format!("/plugins/{name}/openapi.json")),
            docs: has_api.then(|| format!("/plugins/{name}/docs")),
            ui: descriptor.ui.map(|_| format!("/plugins/{name}/ui/")),
            source: PluginSource {
                kind: built
                    .map_or("in-tree", |built| built.source.as_str())
                    .to_owned(),
                url: built.and_then(|built| built.url.clone()),
                sha256: built.and_then(|built| built.sha256.clone()),
            },
        }
    }
}

/// A request body the document refuses, said in the words of the management API rather
/// than the validator's (whose message for `url` is the whole pattern).
pub(crate) fn explain(error: &poem_openapi::error::ParseRequestPayloadError) -> String {
    let reason = &error.reason;
    if reason.contains("field `url`") {
        return "invalid source: url must be an https or http URL with a host, or a file:/// \
                URL with a path, without credentials, spaces or control characters"
            .to_owned();
    }
    if reason.contains("field `sha256`") {
        return "invalid source: sha256 must be 64 hex digits".to_owned();
    }
    format!("invalid request body: {reason}")
}

fn unknown_plugin(name: &str) -> ApiError {
    ApiError::not_found(format!("no plugin named '{name}' is compiled in"))
}

fn source_info(source: super::Source) -> SourceInfo {
    SourceInfo {
        id: source.id,
        url: source.url,
        sha256: source.sha256,
        added: source.added,
    }
}
