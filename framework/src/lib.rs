//! kneedeep: a plugin framework for web applications.
//!
//! A plugin is a crate with an API (poem-openapi endpoints) and an optional UI folder; its
//! doc comment becomes its description:
//!
//! ```
//! use kneedeep::prelude::*;
//!
//! /// Says hello.
//! #[derive(Plugin)]
//! #[plugin(name = "hello", api = HelloApi)]
//! pub struct Hello;
//!
//! #[derive(Default)]
//! pub struct HelloApi;
//!
//! #[OpenApi]
//! impl HelloApi {
//!     #[oai(path = "/hello", method = "get")]
//!     async fn hello(&self, name: Query<String>) -> PlainText<String> {
//!         PlainText(format!("hello, {}", name.0))
//!     }
//! }
//! ```
//!
//! The keys of `#[plugin(...)]`:
//!
//! - `name`: `[a-z][a-z0-9-]{0,62}`, unique in a build; `manage`, `metrics`, `healthz`,
//!   `readyz`, `openapi.json` and `static` are reserved;
//! - `api`: a type implementing `poem_openapi::OpenApi`, built with [`FromContext`] when it
//!   implements it and with `Default` otherwise;
//! - `ui` (optional): a folder relative to the crate, embedded at compile time;
//! - `config` (optional): a `serde::Deserialize` type read from `[plugins.<name>]`.
//!
//! Implement [`Lifecycle`] to run code on load and unload. A binary links plugins by
//! naming their crates and calling [`run`]; `cargo xtask build-with-plugins` writes that
//! binary for you.

mod allow;
mod cli;
mod config;
mod context;
mod detached;
mod embedded;
mod error;
mod limit;
mod logging;
mod manager;
mod manifest;
mod memory;
pub mod metrics;
mod openapi;
pub mod payload;
mod plugin;
mod registry;
mod server;
pub mod store;

pub use cli::{Linked, run};
pub use config::{Config, ConfigError, DatastoreConfig};
pub use context::PluginContext;
pub use error::{ApiError, ErrorBody};
pub use manager::{ManagedPlugin, Manager, PluginState, Source, SourceError, Sources};
pub use manifest::{BuildManifest, ManifestPlugin};
pub use plugin::{BoxError, FromContext, Lifecycle};
pub use registry::RegistryError;
pub use server::{api_prefix, error_response, router};
pub use store::{Datastore, ObjectMeta, PluginStore, PutOptions, StoreError};

pub use kneedeep_macros::Plugin;
pub use poem;
pub use poem_openapi;
pub use tracing;

/// The version of this crate, which a build records in its manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin file usually needs: `use kneedeep::prelude::*;`.
pub mod prelude {
    pub use crate::store::{ObjectMeta, PluginStore, PutOptions, StoreError};
    pub use crate::{ApiError, BoxError, FromContext, Lifecycle, Plugin, PluginContext};
    pub use poem_openapi::param::{Path, Query};
    pub use poem_openapi::payload::{Json, PlainText};
    pub use poem_openapi::{self, ApiResponse, Object, OpenApi};
}

/// What `#[derive(Plugin)]` expands to reaches the framework through here. Not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{NoConfig, parse_config};
    pub use crate::plugin::{
        ApiFromContext, ApiFromDefault, HookFuture, HooksFromLifecycle, MountedApi, NoHooks,
        ParsedConfig, PluginDescriptor, Probe, UiFiles, mount,
    };
    pub use crate::registry::PLUGINS;
    pub use linkme;
    pub use rust_embed;
    pub use rust_embed::RustEmbed;
}
