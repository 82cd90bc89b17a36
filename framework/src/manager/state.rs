//! What the operator asked for each plugin, kept in the datastore under the framework's
//! own namespace (`states/<name>`), so that it survives restarts and, on PostgreSQL,
//! reaches every replica.

use serde::{Deserialize, Serialize};

use crate::store::{Datastore, FRAMEWORK_NAMESPACE, PluginStore, PutOptions, StoreError};

/// The state an operator asked for. A plugin whose hook failed is still `Loaded` here:
/// the next start (or the next replica) tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Desired {
    Loaded,
    Unloaded,
}

/// The stored form of one plugin's desired state.
#[derive(Serialize, Deserialize)]
struct Record {
    state: Desired,
}

/// Every key of a plugin state starts with this.
const PREFIX: &str = "states/";

/// The plugin whose state a key of the framework's namespace holds, if it holds one.
pub(crate) fn plugin_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)
}

/// Reads and writes the desired states.
#[derive(Clone, Debug)]
pub(crate) struct SavedStates {
    store: PluginStore,
}

impl SavedStates {
    pub(crate) fn new(datastore: &Datastore) -> Self {
        SavedStates {
            store: datastore.namespace(FRAMEWORK_NAMESPACE),
        }
    }

    /// The state last asked for `plugin`, if any was.
    pub(crate) async fn get(&self, plugin: &str) -> Result<Option<Desired>, StoreError> {
        let key = format!("{PREFIX}{plugin}");
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let bytes = object.bytes().await?;
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) => Ok(Some(record.state)),
            Err(error) => Err(StoreError::Corrupt {
                key,
                reason: format!("not a plugin state: {error}"),
            }),
        }
    }

    /// Records that `plugin` should be in `state`.
    pub(crate) async fn set(&self, plugin: &str, state: Desired) -> Result<(), StoreError> {
        let record =
            serde_json::to_vec(&Record { state }).map_err(|error| StoreError::Corrupt {
                key: plugin.to_owned(),
                reason: error.to_string(),
            })?;
        let options = PutOptions::new().content_type("application/json");
        self.store
            .put(&format!("{PREFIX}{plugin}"), record, options)
            .await?;
        Ok(())
    }
}
