//! What a plugin is to the framework: the static descriptor the derive registers, the
//! optional lifecycle hooks, and how the plugin's API value is built.
//!
//! A plugin's lifecycle, as the manager drives it:
//!
//! 1. at startup its `[plugins.<name>]` table is parsed into its config type;
//! 2. its API value is built (with [`FromContext`], else `Default`) and mounted under
//!    `/plugins/<name>/api`;
//! 3. if it starts loaded, [`Lifecycle::on_load`] runs, then the gate opens;
//! 4. on unload the gate closes first, then [`Lifecycle::on_unload`] runs;
//! 5. a later load runs `on_load` again. The API value lives as long as the process.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::{OpenApi, OpenApiService};

use crate::config::ConfigError;
use crate::context::PluginContext;

/// The error a plugin's hooks and constructors return: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Hooks a plugin may implement to run code when it is loaded or unloaded.
///
/// Implementing this trait is optional: `#[derive(Plugin)]` finds the implementation if
/// there is one, and uses hooks that do nothing otherwise. A hook that returns an error
/// or panics marks the plugin `failed` with that message; other plugins keep serving.
pub trait Lifecycle {
    /// Runs before the plugin's routes start answering.
    fn on_load(context: PluginContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = context;
        async { Ok(()) }
    }

    /// Runs after the plugin's routes stopped answering.
    fn on_unload(context: PluginContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = context;
        async { Ok(()) }
    }
}

/// Builds a plugin's API value from its context (its config, datastore, metrics).
///
/// An API type that does not implement this is built with `Default::default()`.
pub trait FromContext: Sized {
    /// Builds the API value; an error marks the plugin `failed`.
    fn from_context(context: &PluginContext) -> Result<Self, BoxError>;
}

/// Everything the derive records about one plugin; one static per plugin in the registry.
#[doc(hidden)]
pub struct PluginDescriptor {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    /// `module_path!()` where the derive was expanded; its first segment is the crate.
    pub module_path: &'static str,
    pub ui: Option<UiFiles>,
    pub parse_config: fn(&serde_json::Value) -> Result<ParsedConfig, Vec<ConfigError>>,
    pub mount: fn(&PluginContext) -> Result<MountedApi, BoxError>,
    pub on_load: fn(PluginContext) -> HookFuture,
    pub on_unload: fn(PluginContext) -> HookFuture,
}

impl std::fmt::Debug for PluginDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDescriptor")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("module_path", &self.module_path)
            .finish_non_exhaustive()
    }
}

impl PluginDescriptor {
    /// The name of the crate that defines the plugin, as `extern crate` would spell it.
    pub fn crate_name(&self) -> &'static str {
        self.module_path
            .split("::")
            .next()
            .unwrap_or(self.module_path)
    }
}

/// A plugin's typed config, erased so that the context needs no type parameter.
#[doc(hidden)]
pub type ParsedConfig = Arc<dyn Any + Send + Sync>;

/// The future a lifecycle hook returns, boxed so that descriptors can point at it.
#[doc(hidden)]
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A plugin's UI folder, embedded into the binary at compile time.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct UiFiles {
    pub get: fn(&str) -> Option<rust_embed::EmbeddedFile>,
}

impl UiFiles {
    pub const fn of<T: rust_embed::RustEmbed>() -> Self {
        UiFiles { get: T::get }
    }
}

/// A plugin's API as the server mounts it: the endpoint and its OpenAPI document.
#[doc(hidden)]
pub struct MountedApi {
    pub endpoint: BoxEndpoint<'static>,
    pub spec: String,
}

/// Wraps a plugin's API in an OpenAPI service whose `servers` entry is its API prefix.
///
/// Only what depends on the plugin's type is done here: its operations' metadata, its
/// schemas and its routes, which its own `#[OpenApi]` expansion generated. The rest (the
/// document, its serialization, the routing table) is done once, by [`mount_erased`].
/// Were it done here, every plugin crate would compile its own copy of that code, and a
/// build with a hundred plugins would carry a hundred copies of it, in size and memory.
#[doc(hidden)]
pub fn mount<T: OpenApi + 'static>(api: T, context: &PluginContext) -> MountedApi {
    let mut routes = HashMap::new();
    api.add_routes(&mut routes);
    mount_erased(
        ErasedApi {
            meta: T::meta,
            register: T::register,
            routes,
        },
        context,
    )
}

/// What [`mount`] builds for every plugin, compiled once.
fn mount_erased(api: ErasedApi, context: &PluginContext) -> MountedApi {
    let descriptor = context.descriptor();
    let _current = CurrentApi::set(api.meta, api.register);
    let service = OpenApiService::new(api, descriptor.name, descriptor.version)
        .description(descriptor.description)
        .server(crate::server::api_prefix(descriptor.name));
    let spec = service.spec();
    MountedApi {
        endpoint: poem::IntoEndpoint::into_endpoint(service),
        spec,
    }
}

/// A plugin's API with its type erased: the functions of its `OpenApi` implementation,
/// and the routes it made.
struct ErasedApi {
    meta: fn() -> Vec<MetaApi>,
    register: fn(&mut Registry),
    routes: RouteTable,
}

/// What `OpenApi::add_routes` fills: path, then method, then endpoint.
type RouteTable = HashMap<String, HashMap<Method, BoxEndpoint<'static>>>;

/// An API's `OpenApi::meta` and `OpenApi::register`.
type ApiFunctions = (fn() -> Vec<MetaApi>, fn(&mut Registry));

thread_local! {
    /// The functions of the API being mounted on this thread.
    static CURRENT_API: Cell<Option<ApiFunctions>> = const { Cell::new(None) };
}

/// Makes an API's `meta` and `register` the current ones until dropped.
///
/// `OpenApi::meta` and `OpenApi::register` take no `self`, so an erased API cannot carry
/// them to `OpenApiService`; it finds them here while the service is built, which happens
/// synchronously within [`mount_erased`].
struct CurrentApi;

impl CurrentApi {
    fn set(meta: fn() -> Vec<MetaApi>, register: fn(&mut Registry)) -> Self {
        CURRENT_API.set(Some((meta, register)));
        CurrentApi
    }
}

impl Drop for CurrentApi {
    fn drop(&mut self) {
        CURRENT_API.set(None);
    }
}

impl OpenApi for ErasedApi {
    fn meta() -> Vec<MetaApi> {
        CURRENT_API
            .get()
            .map(|(meta, _)| meta())
            .unwrap_or_default()
    }

    fn register(registry: &mut Registry) {
        if let Some((_, register)) = CURRENT_API.get() {
            register(registry);
        }
    }

    fn add_routes(self, route_table: &mut RouteTable) {
        route_table.extend(self.routes);
    }
}

/// Autoref specialization: `(&&Probe::<T>::new()).method()` picks the impl on `&Probe<T>`
/// when `T` has the capability and falls back to the impl on `Probe<T>` otherwise. The
/// derive expands this on a concrete type, where the choice is made at compile time.
#[doc(hidden)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    #[allow(
        clippy::new_without_default,
        reason = "only the derive's expansion builds one"
    )]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

#[doc(hidden)]
pub trait ApiFromContext<T> {
    fn construct(&self, context: &PluginContext) -> Result<T, BoxError>;
}

impl<T: FromContext> ApiFromContext<T> for &Probe<T> {
    fn construct(&self, context: &PluginContext) -> Result<T, BoxError> {
        T::from_context(context)
    }
}

#[doc(hidden)]
pub trait ApiFromDefault<T> {
    fn construct(&self, context: &PluginContext) -> Result<T, BoxError>;
}

impl<T: Default> ApiFromDefault<T> for Probe<T> {
    fn construct(&self, _context: &PluginContext) -> Result<T, BoxError> {
        Ok(T::default())
    }
}

#[doc(hidden)]
pub trait HooksFromLifecycle {
    fn on_load(&self, context: PluginContext) -> HookFuture;
    fn on_unload(&self, context: PluginContext) -> HookFuture;
}

impl<T: Lifecycle + 'static> HooksFromLifecycle for &Probe<T> {
    fn on_load(&self, context: PluginContext) -> HookFuture {
        Box::pin(T::on_load(context))
    }

    fn on_unload(&self, context: PluginContext) -> HookFuture {
        Box::pin(T::on_unload(context))
    }
}

#[doc(hidden)]
pub trait NoHooks {
    fn on_load(&self, context: PluginContext) -> HookFuture;
    fn on_unload(&self, context: PluginContext) -> HookFuture;
}

impl<T> NoHooks for Probe<T> {
    fn on_load(&self, _context: PluginContext) -> HookFuture {
        Box::pin(async { Ok(()) })
    }

    fn on_unload(&self, _context: PluginContext) -> HookFuture {
        Box::pin(async { Ok(()) })
    }
}
