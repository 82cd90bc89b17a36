//! The two datastore backends, SQLite and PostgreSQL, behind one set of statements.
//!
//! Both dialects accept the same `$N` placeholders and `ON CONFLICT` upserts, so each
//! operation is written once and expanded for each pool by `on_pool!`. Opening,
//! migrations and the read snapshot differ, and on SQLite large values live in files
//! (`files.rs`), so writing and deleting rows there also frees files after commit.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlStr, SqlitePool};

use super::files::BlobFolder;
use super::{Condition, ObjectMeta, StoreError};

/// Runs `$body` with `$pool` bound to the backend's pool for reads or for writes.
macro_rules! on_pool {
    ($backend:expr, read, |$pool:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite { read: $pool, .. } => $body,
            Backend::Postgres($pool) => $body,
        }
    };
    ($backend:expr, write, |$pool:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite { write: $pool, .. } => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// A connected backend.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    /// All writes go through one connection, so writers queue in the pool instead of
    /// failing with "database is locked"; reads use their own connections (WAL). Large
    /// values are files in `blobs`.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        blobs: BlobFolder,
    },
    Postgres(PgPool),
}

/// The page size of a new SQLite file: chunks of 1 MiB span 64 pages instead of 256,
/// which halves the cost of writing and reading them. Small values lose little.
const SQLITE_PAGE_SIZE: u32 = 16384;

/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Backend {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and runs the migrations.
    pub(crate) async fn open(url: &str) -> Result<Backend, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            open_sqlite(url).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| StoreError::Connect {
                    url: redact(url),
                    source,
                })?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl { url: redact(url) });
        };

        backend.migrate().await?;
        Ok(backend)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let (scripts, pool_kind): (&[(i64, &'static str, &'static str)], _) = match self {
            Backend::Sqlite { .. } => (
                &[
                    (
                        1,
                        "objects",
                        include_str!("migrations/sqlite/0001_objects.sql"),
                    ),
                    (
                        2,
                        "value_files",
                        include_str!("migrations/sqlite/0002_value_files.sql"),
                    ),
                ],
                "sqlite",
            ),
            Backend::Postgres(_) => (
                &[
                    (
                        1,
                        "objects",
                        include_str!("migrations/postgres/0001_objects.sql"),
                    ),
                    (
                        2,
                        "change_feed",
                        include_str!("migrations/postgres/0002_change_feed.sql"),
                    ),
                ],
                "postgres",
            ),
        };
        let migrations = scripts
            .iter()
            .map(|&(version, name, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect();
        // The migrator takes an advisory lock on PostgreSQL, so replicas that start at
        // once run each migration exactly once.
        let migrator = Migrator::with_migrations(migrations);
        let result = on_pool!(self, write, |pool| migrator.run(pool).await);
        result.map_err(|source| StoreError::Migrate {
            backend: pool_kind,
            source,
        })
    }

    /// The folder of value files, on SQLite.
    pub(crate) fn blobs(&self) -> Option<&BlobFolder> {
        match self {
            Backend::Sqlite { blobs, .. } => Some(blobs),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether the backend answers a trivial query.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub(crate) async fn head(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<ObjectMeta>, StoreError> {
        const SQL: &str = "SELECT size, content_type, etag, updated_ms FROM kd_objects \
                           WHERE namespace = $1 AND key = $2";
        let row = on_pool!(self, read, |pool| sqlx::query(SQL)
            .bind(namespace)
            .bind(key.as_bytes())
            .fetch_optional(pool)
            .await
            .map(|row| row.map(|row| meta_from_row(key.to_owned(), &row))))?;
        row.transpose()
    }

    /// The object's metadata and, when it fits in one chunk, its value; otherwise the
    /// upload that holds its chunks.
    pub(crate) async fn get_small(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Stored>, StoreError> {
        const SQL: &str = "SELECT size, content_type, etag, updated_ms, inline_data, upload_id \
                           FROM kd_objects WHERE namespace = $1 AND key = $2";
        let row = on_pool!(self, read, |pool| {
            match sqlx::query(SQL)
                .bind(namespace)
                .bind(key.as_bytes())
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(stored_from_row(key, &row)?),
                None => None,
            }
        });
        Ok(row)
    }

    /// Writes the object row in one statement. Returns whether the condition held.
    ///
    /// A large value's row is written in one transaction with a touch of its upload, which
    /// finds nothing if garbage collection deleted the upload first ([`StoreError::Collected`]),
    /// and otherwise keeps collection from deleting it until the row points at it.
    pub(crate) async fn upsert(
        &self,
        namespace: &str,
        meta: &ObjectMeta,
        inline: Option<&[u8]>,
        upload_id: Option<i64>,
        condition: &Condition,
    ) -> Result<bool, StoreError> {
        const ANY: &str = "INSERT INTO kd_objects \
            (namespace, key, size, content_type, etag, updated_ms, inline_data, upload_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
            ON CONFLICT (namespace, key) DO UPDATE SET size = excluded.size, \
            content_type = excluded.content_type, etag = excluded.etag, \
            updated_ms = excluded.updated_ms, inline_data = excluded.inline_data, \
            upload_id = excluded.upload_id";
        const IF_ABSENT: &str = "INSERT INTO kd_objects \
            (namespace, key, size, content_type, etag, updated_ms, inline_data, upload_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (namespace, key) DO NOTHING";
        const IF_MATCH: &str = "UPDATE kd_objects SET size = $3, content_type = $4, etag = $5, \
            updated_ms = $6, inline_data = $7, upload_id = $8 \
            WHERE namespace = $1 AND key = $2 AND etag = $9";
        // SQLite's statements also return the upload the row pointed at before, whose
        // file the process removes once the statement committed.
        const SQLITE_ANY: &str = "INSERT INTO kd_objects \
            (namespace, key, size, content_type, etag, updated_ms, inline_data, upload_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
            ON CONFLICT (namespace, key) DO UPDATE SET size = excluded.size, \
            content_type = excluded.content_type, etag = excluded.etag, \
            updated_ms = excluded.updated_ms, inline_data = excluded.inline_data, \
            replaced_upload_id = kd_objects.upload_id, upload_id = excluded.upload_id \
            RETURNING replaced_upload_id";
        const SQLITE_IF_ABSENT: &str = "INSERT INTO kd_objects \
            (namespace, key, size, content_type, etag, updated_ms, inline_data, upload_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (namespace, key) DO NOTHING \
            RETURNING replaced_upload_id";
        const SQLITE_IF_MATCH: &str = "UPDATE kd_objects SET size = $3, content_type = $4, \
            etag = $5, updated_ms = $6, inline_data = $7, replaced_upload_id = upload_id, \
            upload_id = $8 WHERE namespace = $1 AND key = $2 AND etag = $9 \
            RETURNING replaced_upload_id";
        const TOUCH: &str = "UPDATE kd_uploads SET touched_ms = $2 WHERE id = $1";

        let (sql, sqlite_sql, expected) = match condition {
            Condition::None => (ANY, SQLITE_ANY, None),
            Condition::IfAbsent => (IF_ABSENT, SQLITE_IF_ABSENT, None),
            Condition::IfMatch(etag) => (IF_MATCH, SQLITE_IF_MATCH, Some(etag.as_str())),
        };
        let size = i64::try_from(meta.size).unwrap_or(i64::MAX);
        let updated = super::unix_ms(meta.updated);
        let collected = || StoreError::Collected {
            key: meta.key.clone(),
        };

        macro_rules! bound {
            ($sql:expr) => {{
                let mut query = sqlx::query($sql)
                    .bind(namespace)
                    .bind(meta.key.as_bytes())
                    .bind(size)
                    .bind(meta.content_type.as_str())
                    .bind(meta.etag.as_str())
                    .bind(updated)
                    .bind(inline)
                    .bind(upload_id);
                if let Some(expected) = expected {
                    query = query.bind(expected);
                }
                query
            }};
        }

        match self {
            Backend::Sqlite { write, blobs, .. } => {
                // All rows, so that the statement has run to its end (and committed)
                // before an old file is removed.
                let rows = match upload_id {
                    None => bound!(sqlite_sql).fetch_all(write).await?,
                    Some(upload_id) => {
                        let mut transaction = write.begin().await?;
                        let touched = sqlx::query(TOUCH)
                            .bind(upload_id)
                            .bind(updated)
                            .execute(&mut *transaction)
                            .await?;
                        if touched.rows_affected() == 0 {
                            return Err(collected());
                        }
                        let rows = bound!(sqlite_sql).fetch_all(&mut *transaction).await?;
                        transaction.commit().await?;
                        rows
                    }
                };

                let Some(row) = rows.first() else {
                    return Ok(false);
                };
                let replaced: Option<i64> = row.try_get(0)?;
                if let Some(replaced) = replaced.filter(|&replaced| Some(replaced) != upload_id) {
                    free_file(blobs, replaced).await;
                }
                Ok(true)
            }
            Backend::Postgres(pool) => {
                let Some(upload_id) = upload_id else {
                    let affected = bound!(sql).execute(pool).await?.rows_affected();
                    return Ok(affected == 1);
                };
                let mut transaction = pool.begin().await?;
                let touched = sqlx::query(TOUCH)
                    .bind(upload_id)
                    .bind(updated)
                    .execute(&mut *transaction)
                    .await?;
                if touched.rows_affected() == 0 {
                    return Err(collected());
                }
                let affected = bound!(sql)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                transaction.commit().await?;
                Ok(affected == 1)
            }
        }
    }

    pub(crate) async fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM kd_objects WHERE namespace = $1 AND key = $2";
        const SQLITE: &str =
            "DELETE FROM kd_objects WHERE namespace = $1 AND key = $2 RETURNING upload_id";
        let Backend::Sqlite { write, blobs, .. } = self else {
            let affected = on_pool!(self, write, |pool| sqlx::query(SQL)
                .bind(namespace)
                .bind(key.as_bytes())
                .execute(pool)
                .await?
                .rows_affected());
            return Ok(affected > 0);
        };

        // All rows, so that the statement has committed before the file goes.
        let rows = sqlx::query(SQLITE)
            .bind(namespace)
            .bind(key.as_bytes())
            .fetch_all(write)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        if let Some(upload_id) = row.try_get::<Option<i64>, _>(0)? {
            free_file(blobs, upload_id).await;
        }
        Ok(true)
    }

    /// Objects whose key starts with `prefix` and sorts after `after`, by key bytes.
    pub(crate) async fn list(
        &self,
        namespace: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        const SQL: &str = "SELECT key, size, content_type, etag, updated_ms FROM kd_objects \
            WHERE namespace = $1 AND key >= $2 AND ($3 IS NULL OR key < $3) AND key > $4 \
            ORDER BY key LIMIT $5";
        let upper = prefix_upper_bound(prefix.as_bytes());
        let after = after.unwrap_or_default();

        let rows = on_pool!(self, read, |pool| {
            let rows = sqlx::query(SQL)
                .bind(namespace)
                .bind(prefix.as_bytes())
                .bind(upper.as_deref())
                .bind(after.as_bytes())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            let mut objects = Vec::with_capacity(rows.len());
            for row in &rows {
                let key: Vec<u8> = row.try_get("key")?;
                let key = String::from_utf8(key).map_err(|error| StoreError::Corrupt {
                    key: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                    reason: "the stored key is not UTF-8".to_owned(),
                })?;
                objects.push(meta_from_row(key, row)?);
            }
            objects
        });
        Ok(rows)
    }

    /// Registers a new upload and returns its id.
    pub(crate) async fn begin_upload(
        &self,
        namespace: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        const SQL: &str =
            "INSERT INTO kd_uploads (namespace, touched_ms) VALUES ($1, $2) RETURNING id";
        let id = on_pool!(self, write, |pool| sqlx::query(SQL)
            .bind(namespace)
            .bind(now_ms)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>(0)?);
        Ok(id)
    }

    /// Stores one chunk of an upload and marks the upload as alive (PostgreSQL: on SQLite
    /// a large value goes to its file instead).
    pub(crate) async fn write_chunk(
        &self,
        upload_id: i64,
        seq: i32,
        data: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const CHUNK: &str = "INSERT INTO kd_chunks (upload_id, seq, data) VALUES ($1, $2, $3)";
        const TOUCH: &str = "UPDATE kd_uploads SET touched_ms = $2 WHERE id = $1";
        // One transaction, so each chunk costs one commit.
        on_pool!(self, write, |pool| {
            let mut transaction = pool.begin().await?;
            sqlx::query(CHUNK)
                .bind(upload_id)
                .bind(seq)
                .bind(data)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(TOUCH)
                .bind(upload_id)
                .bind(now_ms)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
        });
        Ok(())
    }

    /// Deletes an upload that will never be committed, and its chunks or file.
    pub(crate) async fn discard_upload(&self, upload_id: i64) -> Result<(), StoreError> {
        const CHUNKS: &str = "DELETE FROM kd_chunks WHERE upload_id = $1";
        const UPLOAD: &str = "DELETE FROM kd_uploads WHERE id = $1";
        on_pool!(self, write, |pool| {
            let mut transaction = pool.begin().await?;
            sqlx::query(CHUNKS)
                .bind(upload_id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(UPLOAD)
                .bind(upload_id)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
        });
        if let Some(blobs) = self.blobs() {
            blobs.remove(upload_id).await?;
        }
        Ok(())
    }

    /// Deletes uploads that no object points at and that nobody touched since
    /// `cutoff_ms`: what a crash in the middle of a put leaves. On SQLite, an upload's
    /// file must be that old too, and files whose upload is gone (a crash between a
    /// row's change and the removal of its old file) are removed. Returns how many
    /// uploads.
    pub(crate) async fn collect_garbage(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        const STALE: &str = "SELECT id FROM kd_uploads u WHERE touched_ms < $1 \
            AND NOT EXISTS (SELECT 1 FROM kd_objects o WHERE o.upload_id = u.id)";
        let cutoff = super::from_unix_ms(cutoff_ms);
        let ids: Vec<i64> = on_pool!(self, read, |pool| {
            let rows = sqlx::query(STALE).bind(cutoff_ms).fetch_all(pool).await?;
            rows.iter()
                .map(|row| row.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?
        });
        let files = match self.blobs() {
            Some(blobs) => blobs.uploads().await?,
            None => Default::default(),
        };

        let mut removed = 0;
        for &id in &ids {
            // A put writing its file does not touch its row until it stores the value.
            if files.get(&id).is_some_and(|&modified| modified >= cutoff) {
                continue;
            }
            if self.delete_idle_upload(id, cutoff_ms).await? {
                removed += 1;
            }
        }

        for (id, modified) in files {
            if ids.contains(&id) || modified >= cutoff || self.upload_exists(id).await? {
                continue;
            }
            if let Some(blobs) = self.blobs() {
                blobs.remove(id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes one upload with its chunks (or file), but only if it is still idle since
    /// `cutoff_ms` and no object points at it: a put that touched it to store its value
    /// meanwhile keeps it. Returns whether it was deleted.
    async fn delete_idle_upload(&self, upload_id: i64, cutoff_ms: i64) -> Result<bool, StoreError> {
        const UPLOAD: &str = "DELETE FROM kd_uploads WHERE id = $1 AND touched_ms < $2 \
            AND NOT EXISTS (SELECT 1 FROM kd_objects o WHERE o.upload_id = $1)";
        const CHUNKS: &str = "DELETE FROM kd_chunks WHERE upload_id = $1";
        let deleted = on_pool!(self, write, |pool| {
            let mut transaction = pool.begin().await?;
            let deleted = sqlx::query(UPLOAD)
                .bind(upload_id)
                .bind(cutoff_ms)
                .execute(&mut *transaction)
                .await?
                .rows_affected()
                > 0;
            if deleted {
                sqlx::query(CHUNKS)
                    .bind(upload_id)
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            deleted
        });

        if let (true, Some(blobs)) = (deleted, self.blobs()) {
            blobs.remove(upload_id).await?;
        }
        Ok(deleted)
    }

    /// Whether the upload is registered: a put is writing it, or an object points at it.
    async fn upload_exists(&self, upload_id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT 1 FROM kd_uploads WHERE id = $1";
        let found = on_pool!(self, read, |pool| sqlx::query(SQL)
            .bind(upload_id)
            .fetch_optional(pool)
            .await?
            .is_some());
        Ok(found)
    }

    /// Counts every stored chunk, each value file counted as the chunks its length
    /// fills; for tests and diagnostics.
    pub(crate) async fn chunk_count(&self) -> Result<i64, StoreError> {
        let rows = on_pool!(self, read, |pool| sqlx::query(
            "SELECT COUNT(*) FROM kd_chunks"
        )
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>(0)?);
        let files = match self.blobs() {
            Some(blobs) => blobs.chunk_count().await?,
            None => 0,
        };
        Ok(rows + files)
    }
}

/// Streams a chunked object on PostgreSQL from one read snapshot, so that a concurrent
/// overwrite never mixes old and new chunks. Returns `None` when the object changed into
/// an inline one or disappeared since `get_small` looked.
pub(crate) async fn open_chunked(
    pool: &PgPool,
    namespace: &str,
    key: &str,
    chunk_size: usize,
) -> Result<Option<(ObjectMeta, BoxStream<'static, Result<Bytes, StoreError>>)>, StoreError> {
    const META: &str = "SELECT size, content_type, etag, updated_ms, inline_data, upload_id \
                        FROM kd_objects WHERE namespace = $1 AND key = $2";
    const CHUNK: &str = "SELECT data FROM kd_chunks WHERE upload_id = $1 AND seq = $2";

    let mut transaction = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let row = sqlx::query(META)
        .bind(namespace)
        .bind(key.as_bytes())
        .fetch_optional(&mut *transaction)
        .await?;
    let Some(stored) = row.map(|row| stored_from_row(key, &row)).transpose()? else {
        return Ok(None);
    };
    let Some(upload_id) = stored.upload_id else {
        return Ok(None);
    };

    let chunks = stored.meta.size.div_ceil(chunk_size as u64) as i32;
    let key = key.to_owned();
    let body = stream::try_unfold((transaction, 0_i32), move |(mut transaction, seq)| {
        let key = key.clone();
        async move {
            if seq >= chunks {
                transaction.commit().await?;
                return Ok(None);
            }
            let row = sqlx::query(CHUNK)
                .bind(upload_id)
                .bind(seq)
                .fetch_optional(&mut *transaction)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::Corrupt {
                    key,
                    reason: format!("chunk {seq} is missing"),
                });
            };
            let data: Vec<u8> = row.try_get(0)?;
            Ok(Some((Bytes::from(data), (transaction, seq + 1))))
        }
    });
    Ok(Some((stored.meta, body.boxed())))
}

/// Removes the file of an upload whose object row no longer points at it. The row's
/// change has committed, so a failure only leaves an orphan for garbage collection.
async fn free_file(blobs: &BlobFolder, upload_id: i64) {
    if let Err(error) = blobs.remove(upload_id).await {
        tracing::warn!(%error, upload_id, "a replaced value's file stays until garbage collection");
    }
}

/// An object row as `get_small` reads it.
pub(crate) struct Stored {
    pub(crate) meta: ObjectMeta,
    pub(crate) inline: Option<Vec<u8>>,
    pub(crate) upload_id: Option<i64>,
}

fn stored_from_row<R: Row>(key: &str, row: &R) -> Result<Stored, StoreError>
where
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(Stored {
        meta: meta_from_row(key.to_owned(), row)?,
        inline: row.try_get("inline_data")?,
        upload_id: row.try_get("upload_id")?,
    })
}

fn meta_from_row<R: Row>(key: String, row: &R) -> Result<ObjectMeta, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let size: i64 = row.try_get("size")?;
    let updated_ms: i64 = row.try_get("updated_ms")?;
    Ok(ObjectMeta {
        key,
        size: u64::try_from(size).unwrap_or_default(),
        content_type: row.try_get("content_type")?,
        etag: row.try_get("etag")?,
        updated: super::from_unix_ms(updated_ms),
    })
}

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when there is none (an empty prefix, or one of only `0xFF` bytes).
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

async fn open_sqlite(url: &str) -> Result<Backend, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::Connect {
            url: url.to_owned(),
            source,
        })?
        .create_if_missing(true)
        .page_size(SQLITE_PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);

    let file = options.get_filename().to_owned();
    if let Some(folder) = file
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            folder: folder.to_owned(),
            source,
        })?;
    }
    let blobs = BlobFolder::beside(&file);
    blobs.create()?;

    let connect = |max: u32| {
        SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options.clone())
    };
    let write = connect(1).await.map_err(|source| StoreError::Connect {
        url: url.to_owned(),
        source,
    })?;
    let read = connect(8).await.map_err(|source| StoreError::Connect {
        url: url.to_owned(),
        source,
    })?;
    Ok(Backend::Sqlite { write, read, blobs })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_upper_bound_is_the_next_byte_string() {
        assert_eq!(prefix_upper_bound(b"notes/"), Some(b"notes0".to_vec()));
        assert_eq!(prefix_upper_bound(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
