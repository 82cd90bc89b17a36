//! The change feed of the framework's own namespace, on PostgreSQL: a trigger notifies
//! `kneedeep_changes` with the key of every committed write to it, and each replica
//! listens, so that a plugin state changed on one replica is applied on all of them.

use sqlx::postgres::PgListener;

use super::sql::Backend;
use super::{Datastore, StoreError};

/// The channel the trigger of migration `0002_change_feed` notifies.
const CHANNEL: &str = "kneedeep_changes";

/// What the feed says next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// This key of the framework's namespace was written or deleted.
    Key(String),
    /// The connection was lost and is being re-established: changes may have been
    /// missed, so everything must be re-read.
    Lost,
}

/// A listening connection to the datastore.
pub(crate) struct ChangeFeed {
    listener: PgListener,
}

impl Datastore {
    /// Starts listening for changes; `None` on SQLite, which one process owns.
    pub(crate) async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError> {
        let Backend::Postgres(pool) = &self.inner.backend else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeFeed { listener }))
    }
}

impl ChangeFeed {
    /// Waits for the next change. After [`Change::Lost`] the next call reconnects and
    /// listens again; an error means that reconnecting failed, and the caller retries.
    pub(crate) async fn next(&mut self) -> Result<Change, StoreError> {
        match self.listener.try_recv().await? {
            Some(notification) => Ok(Change::Key(notification.payload().to_owned())),
            None => Ok(Change::Lost),
        }
    }
}
