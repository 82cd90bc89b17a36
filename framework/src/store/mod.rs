//! The object datastore: key -> value with metadata, private to each plugin.
//!
//! Values are streamed in chunks of [`CHUNK_SIZE`], so a value of any size is written and
//! read with memory bounded by a few chunks. A put is atomic, even across a crash: a large
//! value is staged under an upload id (on PostgreSQL as chunk rows, on SQLite as one file
//! beside the database, synced and renamed), and one statement then points the object row
//! at it. PostgreSQL frees the old value's chunks in that statement; on SQLite the process
//! removes the old file once the statement committed. A value that fits in one chunk is
//! stored in its row and written with a single statement.

mod feed;
mod files;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::config::DatastoreConfig;
use crate::detached::run_to_end;
use crate::plugin::BoxError;
pub(crate) use feed::Change;
use files::StagedFile;
use sql::Backend;

// FIXME(large values reach only 0.09 of a plain file's throughput on PostgreSQL, against
// a target of 0.5, see BENCHMARKS.md): PostgreSQL writes every chunk twice (WAL, then the
// heap) and sends it through the loopback socket; replicas share the values, so they
// cannot move to local files as on SQLite.

/// Values are stored in chunks of this many bytes; smaller values in one row.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// The framework's own namespace (plugin states, sources); no plugin can have this
/// name, and on PostgreSQL every write to it is announced to the other replicas.
pub(crate) const FRAMEWORK_NAMESPACE: &str = "_kneedeep";

/// The longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The content type of a value put without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The whole datastore: one database, shared by every plugin through its namespace.
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    max_value_bytes: u64,
}

impl fmt::Debug for Datastore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.inner.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("Datastore")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

impl Datastore {
    /// Connects to `[datastore] url` and runs the embedded migrations.
    pub async fn open(config: &DatastoreConfig) -> Result<Datastore, StoreError> {
        let backend = Backend::open(&config.url).await?;
        let inner = Inner {
            backend,
            max_value_bytes: config.max_value_bytes,
        };
        Ok(Datastore {
            inner: Arc::new(inner),
        })
    }

    /// The objects of one plugin (or of the framework itself).
    pub fn namespace(&self, namespace: &'static str) -> PluginStore {
        PluginStore {
            store: self.clone(),
            namespace,
        }
    }

    /// Whether the database answers: what `/readyz` reports.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.backend.ping().await
    }

    /// Deletes what puts interrupted by a crash left behind: staged chunks (on SQLite,
    /// files) that no object points at and that nobody wrote to for `idle`, and on SQLite
    /// also value files that a crash kept from being removed with their object. Returns
    /// how many uploads it removed. An upload is removed only if it is still idle and
    /// unreferenced when it is deleted, so a put that finishes meanwhile keeps its value.
    pub async fn collect_garbage(&self, idle: Duration) -> Result<u64, StoreError> {
        let cutoff =
            unix_ms(SystemTime::now()) - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        self.inner.backend.collect_garbage(cutoff).await
    }

    /// How many chunks are stored in all, live or staged; for tests and diagnostics. On
    /// SQLite a large value is one file, which counts as the chunks its length fills
    /// (`length / CHUNK_SIZE`, rounded up), whether staged, live or orphaned.
    pub async fn chunk_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .backend
            .chunk_count()
            .await?
            .try_into()
            .unwrap_or_default())
    }
}

/// One plugin's objects: keys never collide with another plugin's.
#[derive(Clone, Debug)]
pub struct PluginStore {
    store: Datastore,
    namespace: &'static str,
}

/// An object's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: String,
    /// Its value's length in bytes.
    pub size: u64,
    /// The content type it was put with.
    pub content_type: String,
    /// The sha256 of its value, in hex; changes whenever the value does.
    pub etag: String,
    /// When it was last put, to the millisecond.
    pub updated: SystemTime,
}

/// How a put may proceed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Condition {
    /// Always (the default).
    #[default]
    None,
    /// Only if no object has the key.
    IfAbsent,
    /// Only if the object exists and its etag is this one.
    IfMatch(String),
}

/// Options of a put. The default: content type `application/octet-stream`, no condition.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    content_type: Option<String>,
    condition: Condition,
}

impl PutOptions {
    /// The default options.
    pub fn new() -> Self {
        PutOptions::default()
    }

    /// Stores this content type with the value.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Puts only if no object has the key.
    #[must_use]
    pub fn if_absent(mut self) -> Self {
        self.condition = Condition::IfAbsent;
        self
    }

    /// Puts only if the object's etag is `etag` (compare and swap).
    #[must_use]
    pub fn if_match(mut self, etag: impl Into<String>) -> Self {
        self.condition = Condition::IfMatch(etag.into());
        self
    }
}

/// A stored object: its metadata and its value as a stream of chunks.
pub struct Object {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The value; a large one is read chunk by chunk from one consistent snapshot.
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl Object {
    /// Reads the whole value into memory; only for values known to be small.
    pub async fn bytes(mut self) -> Result<Bytes, StoreError> {
        let mut value =
            BytesMut::with_capacity(usize::try_from(self.meta.size).unwrap_or_default());
        while let Some(chunk) = self.body.next().await {
            value.extend_from_slice(&chunk?);
        }
        Ok(value.freeze())
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPage {
    /// Objects in key order (bytewise).
    pub objects: Vec<ObjectMeta>,
    /// Pass as the cursor of the next call; `None` on the last page.
    pub next: Option<String>,
}

/// What can go wrong in the datastore.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is empty, too long, or holds a NUL.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given (cut to 100 characters).
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The value passed `[datastore] max_value_bytes`; nothing was stored.
    #[error("value for key {key:?} is over the limit of {limit} bytes; nothing was stored")]
    TooLarge {
        /// The key.
        key: String,
        /// The limit.
        limit: u64,
    },
    /// The put's condition did not hold; nothing was stored.
    #[error("the condition on key {key:?} does not hold ({condition}); nothing was stored")]
    PreconditionFailed {
        /// The key.
        key: String,
        /// Which condition.
        condition: &'static str,
    },
    /// The value's stream failed; nothing was stored.
    #[error("reading the value for key {key:?} failed; nothing was stored: {source}")]
    Body {
        /// The key.
        key: String,
        /// The stream's error.
        source: BoxError,
    },
    /// The stored data is not what it should be.
    #[error("object {key:?} is damaged: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// `[datastore] url` is neither `sqlite:` nor `postgres:`.
    #[error("datastore url {url:?} is not supported: use sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// The URL, without its password.
        url: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot open the datastore at {url}: {source}")]
    Connect {
        /// The URL, without its password.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The data folder could not be created.
    #[error("cannot create the datastore folder {}: {source}", folder.display())]
    Folder {
        /// The folder.
        folder: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("migrating the {backend} datastore failed: {source}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// The database failed a query.
    #[error("datastore query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A large value's file beside the SQLite database could not be written, read or
    /// removed.
    #[error("cannot {action} the datastore file {}: {source}", path.display())]
    File {
        /// What was done to it.
        action: &'static str,
        /// The file or folder.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The put's staged value sat idle past the garbage collector's limit and was
    /// removed before the put could store it; nothing was stored.
    #[error("the staged value for key {key:?} was collected as garbage; nothing was stored")]
    Collected {
        /// The key.
        key: String,
    },
}

/// Lets a value's stream feed an HTTP body directly (`Body::from_bytes_stream`).
impl From<StoreError> for std::io::Error {
    fn from(error: StoreError) -> Self {
        std::io::Error::other(error)
    }
}

impl PluginStore {
    /// The namespace (the plugin's name).
    pub fn namespace(&self) -> &'static str {
        self.namespace
    }

    /// Stores `value` under `key`.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        options: PutOptions,
    ) -> Result<ObjectMeta, StoreError> {
        let value = value.into();
        let chunks = stream::iter([Ok::<_, std::convert::Infallible>(value)]);
        self.put_stream(key, chunks, options).await
    }

    /// Stores the bytes of `value` under `key`, streamed: memory stays bounded by a few
    /// chunks whatever the size. On any error nothing is stored and the old value (if
    /// any) is intact.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        value: S,
        options: PutOptions,
    ) -> Result<ObjectMeta, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        check_key(key)?;
        let backend = &self.store.inner.backend;
        let limit = self.store.inner.max_value_bytes;
        let mut value = std::pin::pin!(value);

        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = ChunkBuffer::new();
        let mut upload: Option<Upload> = None;

        // A value that ends within its first chunk is stored in its row; the first chunk
        // is written out only once a byte past it arrives.
        let outcome: Result<(), StoreError> = async {
            while let Some(piece) = value.next().await {
                let piece = piece.map_err(|error| StoreError::Body {
                    key: key.to_owned(),
                    source: error.into(),
                })?;
                size += piece.len() as u64;
                if size > limit {
                    return Err(StoreError::TooLarge {
                        key: key.to_owned(),
                        limit,
                    });
                }

                let mut start = 0;
                while start < piece.len() {
                    if buffer.is_full() {
                        self.flush_chunk(&mut upload, &mut buffer, &mut hasher)
                            .await?;
                    }
                    start += buffer.fill(&piece, start);
                }
            }

            if upload.is_none() {
                hasher.update(buffer.contents());
                return Ok(());
            }
            if !buffer.is_empty() {
                self.flush_chunk(&mut upload, &mut buffer, &mut hasher)
                    .await?;
            }
            if let Some(file) = upload.as_mut().and_then(|current| current.file.take()) {
                file.finish()
                    .await
                    .map_err(|error| collected_if_gone(key, error))?;
            }
            Ok(())
        }
        .await;

        if let Err(error) = outcome {
            if let Some(upload) = upload {
                let _ = backend.discard_upload(upload.hand_on()).await;
            }
            return Err(error);
        }

        let meta = ObjectMeta {
            key: key.to_owned(),
            size,
            content_type: options
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            etag: hex::encode(hasher.finalize()),
            updated: now_ms(),
        };
        let applied = match upload {
            None => {
                backend
                    .upsert(
                        self.namespace,
                        &meta,
                        Some(buffer.contents()),
                        None,
                        &options.condition,
                    )
                    .await
            }
            Some(upload) => {
                self.store_upload(&meta, upload.hand_on(), &options.condition)
                    .await
            }
        };
        match applied {
            Ok(true) => {
                self.record("put", meta.size);
                Ok(meta)
            }
            Ok(false) => Err(StoreError::PreconditionFailed {
                key: key.to_owned(),
                condition: match options.condition {
                    Condition::IfAbsent => "the key already exists",
                    _ => "the etag does not match",
                },
            }),
            Err(error) => Err(error),
        }
    }

    /// Points the object at its whole upload, or discards the upload if the object was
    /// not stored; whether it was. Runs to its end: a put dropped between the statement
    /// and the discard (its client went away) would leave the value behind.
    async fn store_upload(
        &self,
        meta: &ObjectMeta,
        upload_id: i64,
        condition: &Condition,
    ) -> Result<bool, StoreError> {
        let (store, namespace) = (self.store.clone(), self.namespace);
        let (meta, condition) = (meta.clone(), condition.clone());
        let stored = run_to_end(async move {
            let backend = &store.inner.backend;
            let applied = backend
                .upsert(namespace, &meta, None, Some(upload_id), &condition)
                .await;
            if !matches!(applied, Ok(true)) {
                let _ = backend.discard_upload(upload_id).await;
            }
            applied
        });
        // `None` only when the runtime stops, and its pools with it.
        stored
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::PoolClosed)))
    }

    /// Writes the buffered chunk as the upload's next, starting the upload if needed, and
    /// hashes it while it is being written.
    async fn flush_chunk(
        &self,
        upload: &mut Option<Upload>,
        buffer: &mut ChunkBuffer,
        hasher: &mut Sha256,
    ) -> Result<(), StoreError> {
        let backend = &self.store.inner.backend;
        let now = unix_ms(SystemTime::now());
        let current = match upload {
            Some(current) => current,
            None => upload.insert(self.begin_upload(now).await?),
        };

        let chunk = buffer.take();
        let write = async {
            match &mut current.file {
                Some(file) => file.append(chunk.clone()).await,
                None => {
                    backend
                        .write_chunk(current.id, current.next_seq, &chunk, now)
                        .await
                }
            }
        };
        let (written, ()) = tokio::join!(write, async { hasher.update(&chunk) });
        written?;

        current.next_seq += 1;
        Ok(())
    }

    /// Registers a new upload and, on SQLite, creates its staging file.
    async fn begin_upload(&self, now: i64) -> Result<Upload, StoreError> {
        let backend = &self.store.inner.backend;
        let id = backend.begin_upload(self.namespace, now).await?;
        let Some(blobs) = backend.blobs() else {
            return Ok(Upload {
                id,
                next_seq: 0,
                file: None,
                discard_on_drop: None,
            });
        };

        match blobs.stage(id).await {
            Ok(file) => Ok(Upload {
                id,
                next_seq: 0,
                file: Some(file),
                discard_on_drop: Some(self.store.clone()),
            }),
            Err(error) => {
                let _ = backend.discard_upload(id).await;
                Err(error)
            }
        }
    }

    /// Reads the object under `key`, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        check_key(key)?;
        let backend = &self.store.inner.backend;

        // Small values come back with their row: one query, no transaction.
        let Some(stored) = backend.get_small(self.namespace, key).await? else {
            return Ok(None);
        };
        if let Some(inline) = stored.inline {
            self.record("get", stored.meta.size);
            let body = stream::iter([Ok(Bytes::from(inline))]).boxed();
            return Ok(Some(Object {
                meta: stored.meta,
                body,
            }));
        }

        let opened = match backend {
            Backend::Sqlite { blobs, .. } => {
                let Some(upload_id) = stored.upload_id else {
                    return Err(StoreError::Corrupt {
                        key: key.to_owned(),
                        reason: "its row holds neither a value nor an upload".to_owned(),
                    });
                };
                let opened = blobs.open(upload_id, stored.meta).await?;
                if opened.is_none() {
                    check_file_replaced(backend, self.namespace, key, upload_id).await?;
                }
                opened
            }
            Backend::Postgres(pool) => {
                sql::open_chunked(pool, self.namespace, key, CHUNK_SIZE).await?
            }
        };
        match opened {
            Some((meta, body)) => {
                self.record("get", meta.size);
                Ok(Some(Object { meta, body }))
            }
            // It changed between the two looks; the second look decides.
            None => Box::pin(self.get(key)).await,
        }
    }

    /// The object's metadata without its value, or `None`.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        check_key(key)?;
        let meta = self.store.inner.backend.head(self.namespace, key).await?;
        self.record("head", 0);
        Ok(meta)
    }

    /// Deletes the object; returns whether there was one.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let deleted = self.store.inner.backend.delete(self.namespace, key).await?;
        self.record("delete", 0);
        Ok(deleted)
    }

    /// Lists objects whose key starts with `prefix`, in key order, `limit` at a time
    /// (at most 1000), after `cursor` (the `next` of the previous page).
    pub async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut objects = self
            .store
            .inner
            .backend
            .list(self.namespace, prefix, cursor, limit + 1)
            .await?;
        let next = if objects.len() > limit as usize {
            objects.truncate(limit as usize);
            objects.last().map(|meta| meta.key.clone())
        } else {
            None
        };
        self.record("list", 0);
        Ok(ObjectPage { objects, next })
    }

    fn record(&self, operation: &'static str, bytes: u64) {
        crate::metrics::datastore_operation(self.namespace, operation, bytes);
    }
}

/// A large value's chunks being written. Dropped before its put hands it on (the put
/// itself was dropped: its client went away mid-upload), it discards itself.
struct Upload {
    id: i64,
    next_seq: i32,
    /// On SQLite, the file the chunks go to instead of rows.
    file: Option<StagedFile>,
    /// The store to discard the upload from when dropped. Only on SQLite, whose one
    /// writing connection keeps the discard behind any write still in flight.
    // FIXME(PostgreSQL uploads of a dropped put wait for the garbage collector): a chunk
    // insert still running on another connection could land after the discard, so the
    // collector removes them once idle for an hour.
    discard_on_drop: Option<Datastore>,
}

impl Upload {
    /// The upload's id, which the caller now answers for.
    fn hand_on(mut self) -> i64 {
        self.discard_on_drop = None;
        self.id
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let Some(store) = self.discard_on_drop.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = self.id;
        runtime.spawn(async move {
            let _ = store.inner.backend.discard_upload(id).await;
        });
    }
}

/// The chunk a put is gathering. The first piece of a chunk is kept as it came, so a
/// value that arrives in one piece, or a stream of chunk-sized pieces, costs no copy;
/// only pieces that have to be joined are copied, into one buffer that the put reuses
/// from chunk to chunk: it is reserved only when a chunk is joined, after the previous
/// chunk was written and dropped, so the reservation takes the previous chunk's
/// allocation back instead of making a new one.
struct ChunkBuffer {
    /// The chunk's first piece, while it is the only one.
    first: Option<Bytes>,
    /// The chunk's pieces, copied together.
    joined: BytesMut,
}

impl ChunkBuffer {
    fn new() -> Self {
        ChunkBuffer {
            first: None,
            joined: BytesMut::new(),
        }
    }

    fn contents(&self) -> &[u8] {
        match &self.first {
            Some(first) => first,
            None => &self.joined,
        }
    }

    fn is_full(&self) -> bool {
        self.contents().len() == CHUNK_SIZE
    }

    fn is_empty(&self) -> bool {
        self.contents().is_empty()
    }

    /// Takes what it can of `piece` from `start` on, up to a full chunk; returns how many
    /// bytes it took.
    fn fill(&mut self, piece: &Bytes, start: usize) -> usize {
        let available = piece.len() - start;
        if self.is_empty() {
            let take = available.min(CHUNK_SIZE);
            self.first = Some(piece.slice(start..start + take));
            return take;
        }

        if let Some(first) = self.first.take() {
            self.joined.reserve(CHUNK_SIZE);
            self.joined.extend_from_slice(&first);
        }
        let take = (CHUNK_SIZE - self.joined.len()).min(available);
        self.joined.extend_from_slice(&piece[start..start + take]);
        take
    }

    /// Empties it, returning the chunk it held.
    fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => self.joined.split().freeze(),
        }
    }
}

/// After an object's file was not found: fine if the object no longer points at that
/// upload (it was replaced or deleted between the two looks), damage if it still does.
// FIXME(a SQLite database written before large values moved to files keeps them in
// `kd_chunks`, and they are reported as damaged here): nothing copies such chunks into
// files yet; a one-time move at open would.
async fn check_file_replaced(
    backend: &Backend,
    namespace: &str,
    key: &str,
    upload_id: i64,
) -> Result<(), StoreError> {
    let now = backend.get_small(namespace, key).await?;
    if now.and_then(|stored| stored.upload_id) != Some(upload_id) {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("the file of its upload {upload_id} is missing"),
    })
}

/// A staged file that vanished was removed by garbage collection.
fn collected_if_gone(key: &str, error: StoreError) -> StoreError {
    match error {
        StoreError::File { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            StoreError::Collected {
                key: key.to_owned(),
            }
        }
        other => other,
    }
}

/// Keys are 1 to 1024 bytes of UTF-8 without NUL.
fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        "a key must not be empty"
    } else if key.len() > MAX_KEY_BYTES {
        "a key must be at most 1024 bytes"
    } else if key.contains('\0') {
        "a key must not contain NUL"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        key: key.chars().take(100).collect(),
        reason,
    })
}

/// Now, cut to the millisecond the datastore keeps.
fn now_ms() -> SystemTime {
    from_unix_ms(unix_ms(SystemTime::now()))
}

pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` through a chunk buffer as `put_stream` does; the chunks it made.
    fn chunks_of(pieces: &[Bytes]) -> Vec<Bytes> {
        let mut buffer = ChunkBuffer::new();
        let mut chunks = Vec::new();
        for piece in pieces {
            let mut start = 0;
            while start < piece.len() {
                if buffer.is_full() {
                    chunks.push(buffer.take());
                }
                start += buffer.fill(piece, start);
            }
        }
        if !buffer.is_empty() {
            chunks.push(buffer.take());
        }
        chunks
    }

    #[test]
    fn pieces_of_any_size_make_whole_chunks() {
        let value: Vec<u8> = (0..3 * CHUNK_SIZE + 123).map(|i| (i % 251) as u8).collect();
        for piece_size in [1000, 64 << 10, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1] {
            let pieces: Vec<Bytes> = value
                .chunks(piece_size)
                .map(Bytes::copy_from_slice)
                .collect();
            let chunks = chunks_of(&pieces);

            let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
            assert_eq!(
                sizes,
                [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 123],
                "pieces of {piece_size}"
            );
            assert_eq!(chunks.concat(), value, "pieces of {piece_size}");
        }
    }

    #[test]
    fn a_value_in_one_piece_is_not_copied() {
        let piece = Bytes::from(vec![7; 100]);
        let chunks = chunks_of(std::slice::from_ref(&piece));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].as_ptr(), piece.as_ptr());
    }

    #[test]
    fn joined_chunks_reuse_one_allocation_once_written() {
        let piece = Bytes::from(vec![1; 64 << 10]);
        let mut buffer = ChunkBuffer::new();
        let mut addresses = Vec::new();
        for _ in 0..3 {
            while !buffer.is_full() {
                buffer.fill(&piece, 0);
            }
            let chunk = buffer.take();
            addresses.push(chunk.as_ptr());
            // Written and dropped, as `flush_chunk` does before the next piece comes.
            drop(chunk);
        }
        assert_eq!(addresses[0], addresses[1]);
        assert_eq!(addresses[1], addresses[2]);
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("notes/2026/a b/ü/..").is_ok());
        assert!(check_key(&"k".repeat(1024)).is_ok());
        for bad in ["", "a\0b", &"k".repeat(1025)] {
            assert!(
                matches!(check_key(bad), Err(StoreError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }
}
