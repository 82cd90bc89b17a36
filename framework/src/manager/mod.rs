//! The plugin manager: each compiled-in plugin's state (`loaded`, `unloaded`, `failed`),
//! the gate that its routes check, the load/unload transitions that run its hooks, the
//! desired states kept in the datastore, and the management API over all of it.
//!
//! Architecture invariant: the request path reads one `AtomicBool` per request (the
//! gate); everything else here runs only on a transition, serialized per plugin.

pub(crate) mod api;
pub(crate) mod auth;
mod sources;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use tracing::{Instrument, info, warn};

use crate::config::{Config, ConfigError};
use crate::context::PluginContext;
use crate::detached::run_to_end;
use crate::plugin::{BoxError, HookFuture, PluginDescriptor};
use crate::store::{Change, Datastore, StoreError};
pub(crate) use sources::check_source;
pub use sources::{Source, SourceError, Sources};
use state::{Desired, SavedStates};

/// A plugin's state as the management API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    /// Its routes answer.
    Loaded,
    /// Its routes answer 404.
    Unloaded,
    /// A hook or its constructor failed; its routes answer 404.
    Failed(String),
}

impl PluginState {
    /// `loaded`, `unloaded` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PluginState::Loaded => "loaded",
            PluginState::Unloaded => "unloaded",
            PluginState::Failed(_) => "failed",
        }
    }
}

/// One compiled-in plugin at run time.
pub struct ManagedPlugin {
    descriptor: &'static PluginDescriptor,
    context: PluginContext,
    gate: AtomicBool,
    state: std::sync::Mutex<PluginState>,
    /// Serializes transitions so that two loads never run the hook twice at once.
    transition: tokio::sync::Mutex<()>,
    /// Serializes recording a desired state with applying it, so that the recorded
    /// state and the live one take the requests in the same order.
    asked: tokio::sync::Mutex<()>,
    api: Option<MountedParts>,
}

/// What the server mounts for a plugin whose API value was built.
pub(crate) struct MountedParts {
    pub(crate) endpoint: Arc<BoxEndpoint<'static>>,
    pub(crate) spec: String,
}

impl ManagedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &'static str {
        self.descriptor.name
    }

    /// What the derive recorded about the plugin.
    pub fn descriptor(&self) -> &'static PluginDescriptor {
        self.descriptor
    }

    /// The plugin's context, as its API value and hooks see it.
    pub fn context(&self) -> &PluginContext {
        &self.context
    }

    /// Whether requests to the plugin's routes are served: one atomic load.
    #[inline]
    pub fn is_loaded(&self) -> bool {
        self.gate.load(Ordering::Acquire)
    }

    /// The current state, with the error of a failed plugin.
    pub fn state(&self) -> PluginState {
        self.state
            .lock()
            .map(|state| state.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The plugin's own OpenAPI document, when its API value was built.
    pub fn spec(&self) -> Option<&str> {
        self.api.as_ref().map(|api| api.spec.as_str())
    }

    pub(crate) fn api(&self) -> Option<&MountedParts> {
        self.api.as_ref()
    }

    fn set_state(&self, state: PluginState) {
        let loaded = state == PluginState::Loaded;
        self.gate.store(loaded, Ordering::Release);
        crate::metrics::plugin_loaded(self.name(), loaded);
        match self.state.lock() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Runs the load hook and opens the gate. Idempotent: a loaded plugin stays as it is.
    pub async fn load(&self) -> PluginState {
        let _transition = self.transition.lock().await;
        if self.is_loaded() {
            return PluginState::Loaded;
        }
        if self.api.is_none() {
            // The constructor failed at startup; its error stays the reason.
            return self.state();
        }

        let state = match run_hook(
            self.name(),
            "load",
            (self.descriptor.on_load)(self.context.clone()),
        )
        .await
        {
            Ok(()) => PluginState::Loaded,
            Err(message) => PluginState::Failed(message),
        };
        self.set_state(state.clone());
        info!(plugin = self.name(), state = state.as_str(), "plugin load");
        state
    }

    /// Closes the gate, then runs the unload hook. Idempotent.
    pub async fn unload(&self) -> PluginState {
        let _transition = self.transition.lock().await;
        if !self.is_loaded() {
            if self.api.is_some() {
                self.set_state(PluginState::Unloaded);
            }
            return self.state();
        }

        self.gate.store(false, Ordering::Release);
        crate::metrics::plugin_loaded(self.name(), false);
        let hook = (self.descriptor.on_unload)(self.context.clone());
        let state = match run_hook(self.name(), "unload", hook).await {
            Ok(()) => PluginState::Unloaded,
            Err(message) => PluginState::Failed(message),
        };
        self.set_state(state.clone());
        info!(
            plugin = self.name(),
            state = state.as_str(),
            "plugin unload"
        );
        state
    }
}

/// Runs a hook in its own task, so that a panic becomes the plugin's error and not the
/// process's. Every event the hook emits carries `plugin=<name>`.
async fn run_hook(
    plugin: &'static str,
    hook: &'static str,
    future: HookFuture,
) -> Result<(), String> {
    let span = tracing::info_span!("hook", plugin, hook);
    let outcome = tokio::spawn(future.instrument(span)).await;

    let message = match outcome {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(error)) => format!("{hook} hook failed: {}", error_chain(error.as_ref())),
        Err(join_error) if join_error.is_panic() => {
            let payload = join_error.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_owned());
            format!("{hook} hook panicked: {text}")
        }
        Err(join_error) => format!("{hook} hook was cancelled: {join_error}"),
    };
    warn!(plugin, hook, error = %message, "plugin hook failed");
    Err(message)
}

/// `error: cause: cause`, the way a person reads a chain.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Every compiled-in plugin, sorted by name, and the states asked for them.
pub struct Manager {
    plugins: Vec<Arc<ManagedPlugin>>,
    states: SavedStates,
    sources: Sources,
}

impl Manager {
    /// Parses every plugin's config and builds its API value. Config mistakes are
    /// returned all at once; a constructor that fails marks only that plugin `failed`.
    pub fn new(
        descriptors: &[&'static PluginDescriptor],
        config: &Config,
        datastore: &Datastore,
    ) -> Result<Manager, Vec<ConfigError>> {
        let mut errors = check_plugin_config(descriptors, config);
        let mut plugins = Vec::with_capacity(descriptors.len());

        for &descriptor in descriptors {
            let parsed = match (descriptor.parse_config)(&config.plugin_table(descriptor.name)) {
                Ok(parsed) => parsed,
                Err(_) => continue, // reported by check_plugin_config
            };
            let context = PluginContext::new(descriptor, parsed, datastore);
            plugins.push(Arc::new(build_plugin(descriptor, context)));
        }

        let mut names: Vec<&str> = descriptors.iter().map(|d| d.name).collect();
        names.sort_unstable();
        errors.extend(config.unknown_plugin_tables(&names));
        if !errors.is_empty() {
            return Err(errors);
        }
        plugins.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(Manager {
            plugins,
            states: SavedStates::new(datastore),
            sources: Sources::new(datastore),
        })
    }

    /// Every plugin, sorted by name.
    pub fn plugins(&self) -> &[Arc<ManagedPlugin>] {
        &self.plugins
    }

    /// One plugin by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ManagedPlugin>> {
        self.plugins
            .binary_search_by(|plugin| plugin.name().cmp(name))
            .ok()
            .map(|index| &self.plugins[index])
    }

    /// The plugin sources kept in the datastore.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Brings every plugin to its initial state: the one last asked for through the
    /// management API if any was, else loaded when `enabled` (default true). A hook
    /// that fails makes its plugin `failed`, not the startup.
    pub async fn start(&self, config: &Config) -> Result<(), StoreError> {
        for plugin in &self.plugins {
            let desired = match self.states.get(plugin.name()).await? {
                Some(desired) => desired,
                None if config.plugin_enabled(plugin.name()).unwrap_or(true) => Desired::Loaded,
                None => Desired::Unloaded,
            };
            apply(plugin, desired).await;
        }
        Ok(())
    }

    /// Loads (`loaded == true`) or unloads a plugin and records it as asked for, so that
    /// restarts and other replicas follow. `None` for an unknown plugin. Once begun, the
    /// change runs to its end even if the caller stops waiting for it.
    pub async fn set_loaded(
        &self,
        name: &str,
        loaded: bool,
    ) -> Result<Option<PluginState>, StoreError> {
        let Some(plugin) = self.get(name) else {
            return Ok(None);
        };
        let desired = if loaded {
            Desired::Loaded
        } else {
            Desired::Unloaded
        };

        // Run to its end: a caller that goes away (a client that disconnects) must not
        // leave the state recorded but not applied, or the gate closed on a plugin still
        // reported loaded.
        let (plugin, states) = (plugin.clone(), self.states.clone());
        let change = run_to_end(async move {
            let _asked = plugin.asked.lock().await;
            // Recorded first: a state that could not be kept is not applied either.
            states.set(plugin.name(), desired).await?;
            Ok(apply(&plugin, desired).await)
        });
        match change.await {
            Some(outcome) => outcome.map(Some),
            // Only when the runtime stops: the state is whatever the change reached.
            None => Ok(self.get(name).map(|plugin| plugin.state())),
        }
    }

    /// Applies the recorded state of one plugin, as another replica left it.
    async fn follow(&self, name: &str) -> Result<(), StoreError> {
        let Some(plugin) = self.get(name) else {
            return Ok(());
        };
        let _asked = plugin.asked.lock().await;
        if let Some(desired) = self.states.get(name).await? {
            apply(plugin, desired).await;
        }
        Ok(())
    }

    /// Applies every recorded state.
    async fn follow_all(&self) -> Result<(), StoreError> {
        for plugin in &self.plugins {
            self.follow(plugin.name()).await?;
        }
        Ok(())
    }
}

/// Brings `plugin` to `desired`; both transitions are idempotent.
async fn apply(plugin: &ManagedPlugin, desired: Desired) -> PluginState {
    match desired {
        Desired::Loaded => plugin.load().await,
        Desired::Unloaded => plugin.unload().await,
    }
}

/// How long to wait before listening again after the change feed failed: doubling
/// from the first to the last, so that a short outage costs little and a long one
/// does not flood the log.
const FEED_RETRY_FIRST: Duration = Duration::from_millis(100);
const FEED_RETRY_LAST: Duration = Duration::from_secs(5);

/// Keeps this replica in step with the others on PostgreSQL: applies each state change
/// that the change feed announces, and re-reads every state whenever the feed's
/// connection was lost (changes may have been missed meanwhile). Returns at once on
/// SQLite, which one process owns.
pub(crate) async fn follow_changes(manager: Arc<Manager>, datastore: Datastore) {
    let mut retry = FEED_RETRY_FIRST;
    loop {
        let mut feed = match datastore.change_feed().await {
            Ok(Some(feed)) => feed,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, ?retry, "cannot listen for changes of other replicas; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(FEED_RETRY_LAST);
                continue;
            }
        };
        retry = FEED_RETRY_FIRST;
        // Anything that changed before the feed listened is read now.
        if let Err(error) = manager.follow_all().await {
            warn!(%error, "cannot read the plugin states");
        }

        loop {
            let outcome = match feed.next().await {
                Ok(Change::Key(key)) => match state::plugin_of_key(&key) {
                    Some(name) => manager.follow(name).await,
                    None => Ok(()),
                },
                Ok(Change::Lost) => {
                    info!("change feed reconnecting; re-reading every plugin state");
                    manager.follow_all().await
                }
                Err(error) => {
                    warn!(%error, "change feed lost; listening again");
                    break;
                }
            };
            if let Err(error) = outcome {
                warn!(%error, "cannot apply a change of another replica");
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// Validates every plugin's table without building anything: `check-config` uses it.
pub(crate) fn check_plugin_config(
    descriptors: &[&'static PluginDescriptor],
    config: &Config,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for descriptor in descriptors {
        if let Err(error) = config.plugin_enabled(descriptor.name) {
            errors.push(error);
        }
        if let Err(found) = (descriptor.parse_config)(&config.plugin_table(descriptor.name)) {
            errors.extend(found.into_iter().map(|mut error| {
                error.plugin = Some(descriptor.name.to_owned());
                error
            }));
        }
    }
    errors
}

fn build_plugin(descriptor: &'static PluginDescriptor, context: PluginContext) -> ManagedPlugin {
    let span = tracing::info_span!("mount", plugin = descriptor.name);
    let mounted: Result<_, BoxError> = span.in_scope(|| (descriptor.mount)(&context));

    let (api, state) = match mounted {
        Ok(mounted) => (
            Some(MountedParts {
                endpoint: Arc::new(mounted.endpoint),
                spec: mounted.spec,
            }),
            PluginState::Unloaded,
        ),
        Err(error) => {
            let message = format!(
                "its API could not be built: {}",
                error_chain(error.as_ref())
            );
            warn!(plugin = descriptor.name, error = %message, "plugin failed");
            (None, PluginState::Failed(message))
        }
    };

    ManagedPlugin {
        descriptor,
        context,
        gate: AtomicBool::new(false),
        state: std::sync::Mutex::new(state),
        transition: tokio::sync::Mutex::new(()),
        asked: tokio::sync::Mutex::new(()),
        api,
    }
}
