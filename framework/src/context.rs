//! `PluginContext`: the services handed to one plugin, cheap to clone and shared by its
//! API value and its hooks.

use std::any::Any;
use std::sync::Arc;

use crate::metrics::PluginMetrics;
use crate::plugin::{ParsedConfig, PluginDescriptor};
use crate::store::{Datastore, PluginStore};

/// What a plugin is handed: its name, its typed config, and the framework's services:
/// its own namespace of the datastore and metrics labelled with its name. Logging needs
/// nothing from here: events inside the plugin's requests and hooks carry its name.
#[derive(Clone)]
pub struct PluginContext {
    inner: Arc<Inner>,
}

struct Inner {
    descriptor: &'static PluginDescriptor,
    config: ParsedConfig,
    store: PluginStore,
}

impl PluginContext {
    pub(crate) fn new(
        descriptor: &'static PluginDescriptor,
        config: ParsedConfig,
        datastore: &Datastore,
    ) -> Self {
        let store = datastore.namespace(descriptor.name);
        PluginContext {
            inner: Arc::new(Inner {
                descriptor,
                config,
                store,
            }),
        }
    }

    /// The plugin's name, as given to `#[plugin(name = ...)]`.
    pub fn name(&self) -> &'static str {
        self.inner.descriptor.name
    }

    /// The plugin's `[plugins.<name>]` table, as the type given to `#[plugin(config = ...)]`.
    ///
    /// Returns `None` only when `T` is not that type.
    pub fn config<T: Any>(&self) -> Option<&T> {
        self.inner.config.downcast_ref::<T>()
    }

    /// The plugin's objects in the datastore; no other plugin sees them.
    pub fn store(&self) -> &PluginStore {
        &self.inner.store
    }

    /// Metrics labelled `plugin="<name>"`, rendered at `GET /metrics`.
    pub fn metrics(&self) -> PluginMetrics {
        PluginMetrics::new(self.name())
    }

    pub(crate) fn descriptor(&self) -> &'static PluginDescriptor {
        self.inner.descriptor
    }
}

impl std::fmt::Debug for PluginContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginContext")
            .field("plugin", &self.name())
            .finish_non_exhaustive()
    }
}
