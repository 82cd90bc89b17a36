//! The scenarios that run in the test's own process: values and metadata, compare and
//! swap, the size limit, failing bodies, concurrent readers and writers, and paging.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use kneedeep::store::{CHUNK_SIZE, DEFAULT_CONTENT_TYPE, MAX_KEY_BYTES};
use kneedeep::{Datastore, ObjectMeta, PluginStore, PutOptions, StoreError};
use tokio::task::JoinSet;

use crate::values::{
    BODY_PIECE, Generated, MIB, assert_invalid_key, assert_precondition_failed, list_keys,
    probed_body, read_whole, sha256_hex, sliced,
};
use crate::{Backend, Kind};

/// What key `k` held before the put a scenario tries on it.
struct OldValue {
    value: Bytes,
    meta: ObjectMeta,
    /// The chunks stored in all, with it.
    chunks: u64,
}

impl OldValue {
    /// Puts a generated value of `len` bytes under `k`.
    async fn put(
        datastore: &Datastore,
        store: &PluginStore,
        seed: u64,
        len: u64,
    ) -> anyhow::Result<Self> {
        let value = Generated { seed, len }.bytes();
        let meta = store.put("k", value.clone(), PutOptions::new()).await?;
        let chunks = datastore.chunk_count().await?;
        Ok(OldValue {
            value,
            meta,
            chunks,
        })
    }

    /// Fails unless `k` still holds the value whole, with its metadata.
    async fn ensure_kept(&self, store: &PluginStore) -> anyhow::Result<()> {
        let (meta, read) = read_whole(store, "k").await?;
        assert_eq!(meta, self.meta);
        ensure!(read == self.value, "the old value changed");
        Ok(())
    }
}

pub(crate) async fn put_get_head_delete_list_keep_values_and_metadata(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("basics");

    let put = store
        .put(
            "notes/a",
            "hello",
            PutOptions::new().content_type("text/plain"),
        )
        .await?;
    assert_eq!(put.key, "notes/a");
    assert_eq!(put.size, 5);
    assert_eq!(put.content_type, "text/plain");
    assert_eq!(put.etag, sha256_hex(b"hello"));
    assert_eq!(
        read_whole(&store, "notes/a").await?,
        (put.clone(), b"hello".to_vec())
    );
    assert_eq!(store.head("notes/a").await?, Some(put.clone()));

    let replaced = store
        .put("notes/a", "hello again", PutOptions::new())
        .await?;
    assert_ne!(replaced.etag, put.etag);
    assert_eq!(replaced.etag, sha256_hex(b"hello again"));
    assert_eq!(replaced.content_type, DEFAULT_CONTENT_TYPE);
    assert_eq!(
        read_whole(&store, "notes/a").await?,
        (replaced.clone(), b"hello again".to_vec())
    );

    let empty = store.put("empty", Bytes::new(), PutOptions::new()).await?;
    assert_eq!(empty.size, 0);
    assert_eq!(empty.etag, sha256_hex(b""));
    assert_eq!(
        read_whole(&store, "empty").await?,
        (empty.clone(), Vec::new())
    );
    assert_eq!(store.head("empty").await?, Some(empty));

    // Around the chunk size: a value of exactly one chunk still lives in its row.
    let lengths = [
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE + 7,
    ];
    for (seed, length) in (1..).zip(lengths) {
        let key = format!("sized/{length}");
        let value = Generated {
            seed,
            len: length as u64,
        }
        .bytes();
        let options = PutOptions::new().content_type("application/x-test");
        let put = store.put(&key, value.clone(), options).await?;
        assert_eq!(put.size, length as u64);
        assert_eq!(put.etag, sha256_hex(&value));
        let (meta, read) = read_whole(&store, &key).await?;
        assert_eq!(meta, put);
        assert!(
            read == value,
            "the value of {length} bytes came back different"
        );
    }
    assert_eq!(datastore.chunk_count().await?, 2 + 3);

    let odd_keys = [
        "a/b/../c".to_owned(),
        "ü/日本".to_owned(),
        "..".to_owned(),
        "a b".to_owned(),
        "k".repeat(MAX_KEY_BYTES),
    ];
    let keys_store = datastore.namespace("keys");
    for key in &odd_keys {
        let put = keys_store.put(key, key.clone(), PutOptions::new()).await?;
        assert_eq!(&put.key, key);
        assert_eq!(
            read_whole(&keys_store, key).await?,
            (put, key.as_bytes().to_vec())
        );
    }
    let mut sorted = odd_keys.to_vec();
    sorted.sort();
    assert_eq!(list_keys(&keys_store, "", 1000).await?, sorted);
    assert_eq!(list_keys(&keys_store, "a/", 1000).await?, ["a/b/../c"]);
    assert_eq!(list_keys(&keys_store, "ü/", 1000).await?, ["ü/日本"]);
    assert_eq!(list_keys(&keys_store, "..", 1000).await?, [".."]);

    let too_long = "k".repeat(MAX_KEY_BYTES + 1);
    for (key, reason) in [("", "empty"), (too_long.as_str(), "1024"), ("a\0b", "NUL")] {
        assert_invalid_key(store.put(key, "x", PutOptions::new()).await, reason);
        assert_invalid_key(store.get(key).await.map(|_| ()), reason);
        assert_invalid_key(store.head(key).await, reason);
        assert_invalid_key(store.delete(key).await, reason);
    }

    assert!(store.delete("notes/a").await?);
    assert!(store.get("notes/a").await?.is_none());
    assert_eq!(store.head("notes/a").await?, None);
    assert!(!store.delete("notes/a").await?);
    assert!(
        !list_keys(&store, "", 1000)
            .await?
            .contains(&"notes/a".to_owned())
    );

    let alpha = datastore.namespace("alpha");
    let beta = datastore.namespace("beta");
    alpha
        .put("shared/key", "alpha's", PutOptions::new())
        .await?;
    assert!(beta.get("shared/key").await?.is_none());
    assert_eq!(beta.head("shared/key").await?, None);
    assert!(list_keys(&beta, "", 1000).await?.is_empty());
    assert!(!beta.delete("shared/key").await?);
    beta.put("shared/key", "beta's", PutOptions::new()).await?;
    assert_eq!(read_whole(&alpha, "shared/key").await?.1, b"alpha's");
    assert_eq!(read_whole(&beta, "shared/key").await?.1, b"beta's");
    assert!(alpha.delete("shared/key").await?);
    assert_eq!(read_whole(&beta, "shared/key").await?.1, b"beta's");
    Ok(())
}

pub(crate) async fn compare_and_swap_refuses_stale_etags(backend: Backend) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("cas");

    let first = store
        .put("doc", "first", PutOptions::new().if_absent())
        .await?;
    let refused = store
        .put("doc", "second", PutOptions::new().if_absent())
        .await;
    assert_precondition_failed(refused, "doc");
    assert_eq!(
        read_whole(&store, "doc").await?,
        (first.clone(), b"first".to_vec())
    );

    let stale = sha256_hex(b"some other value");
    let refused = store
        .put("doc", "second", PutOptions::new().if_match(&stale))
        .await;
    assert_precondition_failed(refused, "doc");
    assert_eq!(
        read_whole(&store, "doc").await?,
        (first.clone(), b"first".to_vec())
    );

    let second = store
        .put("doc", "second", PutOptions::new().if_match(&first.etag))
        .await?;
    assert_eq!(
        read_whole(&store, "doc").await?,
        (second, b"second".to_vec())
    );
    let refused = store
        .put("doc", "third", PutOptions::new().if_match(&first.etag))
        .await;
    assert_precondition_failed(refused, "doc");
    let refused = store
        .put("missing", "x", PutOptions::new().if_match(&first.etag))
        .await;
    assert_precondition_failed(refused, "missing");
    assert_eq!(store.head("missing").await?, None);

    // A refused put of a large value leaves none of its chunks behind.
    let old = Generated {
        seed: 1,
        len: 3 * MIB + 1,
    }
    .bytes();
    let new = Generated {
        seed: 2,
        len: 3 * MIB + 1,
    }
    .bytes();
    let old_meta = store.put("big", old.clone(), PutOptions::new()).await?;
    assert_eq!(datastore.chunk_count().await?, 4);
    for options in [
        PutOptions::new().if_match(&stale),
        PutOptions::new().if_absent(),
    ] {
        assert_precondition_failed(store.put("big", new.clone(), options).await, "big");
        assert_eq!(datastore.chunk_count().await?, 4);
        assert!(
            read_whole(&store, "big").await?.1 == old,
            "the old value changed"
        );
    }
    let swapped = store
        .put(
            "big",
            new.clone(),
            PutOptions::new().if_match(&old_meta.etag),
        )
        .await?;
    assert_eq!(datastore.chunk_count().await?, 4);
    let (meta, read) = read_whole(&store, "big").await?;
    assert_eq!(meta, swapped);
    assert!(read == new, "the swapped value came back different");

    // Of racing swaps from the same etag, and racing creations, exactly one wins.
    let base = store.put("race", "base", PutOptions::new()).await?;
    let winner = race_puts(&store, "race", PutOptions::new().if_match(&base.etag)).await?;
    assert_eq!(read_whole(&store, "race").await?.1, winner.as_bytes());
    let winner = race_puts(&store, "fresh", PutOptions::new().if_absent()).await?;
    assert_eq!(read_whole(&store, "fresh").await?.1, winner.as_bytes());
    Ok(())
}

/// Eight puts of the same key at once, each of its own value and all with `options`;
/// checks that exactly one succeeds and returns its value.
async fn race_puts(store: &PluginStore, key: &str, options: PutOptions) -> anyhow::Result<String> {
    let mut racers = JoinSet::new();
    for racer in 0..8 {
        let store = store.clone();
        let key = key.to_owned();
        let options = options.clone();
        racers.spawn(async move {
            let value = format!("racer {racer}");
            let result = store.put(&key, value.clone(), options).await;
            (value, result)
        });
    }

    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        match joined? {
            (value, Ok(_)) => winners.push(value),
            (_, Err(StoreError::PreconditionFailed { .. })) => {}
            (_, Err(error)) => return Err(error.into()),
        }
    }
    ensure!(
        winners.len() == 1,
        "racing puts of {key} succeeded: {winners:?}"
    );
    Ok(winners.remove(0))
}

pub(crate) async fn over_the_limit_put_keeps_old_value_and_leaves_no_chunks(
    backend: Backend,
) -> anyhow::Result<()> {
    const LIMIT: u64 = 3 * MIB;
    let datastore = backend.open_with_limit(LIMIT).await?;
    let store = datastore.namespace("limits");

    // A value of exactly the limit is allowed.
    let old = OldValue::put(&datastore, &store, 3, LIMIT).await?;
    assert_eq!(old.chunks, 3);

    let over = Generated {
        seed: 4,
        len: LIMIT + BODY_PIECE as u64,
    }
    .bytes();
    let staged = Arc::new(AtomicU64::new(0));
    let body = probed_body(over, None, datastore.clone(), staged.clone());
    match store.put_stream("k", body, PutOptions::new()).await {
        Err(StoreError::TooLarge { key, limit }) => {
            assert_eq!(key, "k");
            assert_eq!(limit, LIMIT);
        }
        other => bail!("a put over the limit gave {other:?}"),
    }
    assert!(
        staged.load(Ordering::SeqCst) > old.chunks,
        "the put staged no chunk before it passed the limit"
    );
    assert_eq!(datastore.chunk_count().await?, old.chunks);
    old.ensure_kept(&store).await?;

    let whole = vec![0_u8; usize::try_from(LIMIT)? + 1];
    for key in ["k", "new"] {
        match store.put(key, whole.clone(), PutOptions::new()).await {
            Err(StoreError::TooLarge { .. }) => {}
            other => bail!("a put over the limit gave {other:?}"),
        }
    }
    assert_eq!(store.head("k").await?, Some(old.meta));
    assert_eq!(store.head("new").await?, None);
    assert_eq!(datastore.chunk_count().await?, old.chunks);
    Ok(())
}

pub(crate) async fn failing_body_keeps_old_value_and_leaves_no_chunks(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("bodies");
    let old = OldValue::put(&datastore, &store, 5, 2 * MIB + 100).await?;

    let staged = Arc::new(AtomicU64::new(0));
    let failure = io::Error::new(io::ErrorKind::ConnectionReset, "the client went away");
    let new = Generated {
        seed: 6,
        len: 2 * MIB,
    }
    .bytes();
    let body = probed_body(new, Some(failure), datastore.clone(), staged.clone());
    match store.put_stream("k", body, PutOptions::new()).await {
        Err(StoreError::Body { key, source }) => {
            assert_eq!(key, "k");
            assert!(
                source.to_string().contains("the client went away"),
                "{source}"
            );
        }
        other => bail!("a put whose body failed gave {other:?}"),
    }
    assert!(
        staged.load(Ordering::SeqCst) > old.chunks,
        "the put staged no chunk before its body failed"
    );
    assert_eq!(datastore.chunk_count().await?, old.chunks);
    old.ensure_kept(&store).await?;

    let at_once = stream::iter([Err::<Bytes, _>(io::Error::other("refused at once"))]);
    match store.put_stream("new", at_once, PutOptions::new()).await {
        Err(StoreError::Body { key, .. }) => assert_eq!(key, "new"),
        other => bail!("a put whose body failed gave {other:?}"),
    }
    assert_eq!(store.head("new").await?, None);
    Ok(())
}

pub(crate) async fn dropped_put_keeps_old_value_and_leaves_no_chunks(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("dropped");
    let old = OldValue::put(&datastore, &store, 12, 2 * MIB + 3).await?;

    // The body stalls after three chunks' worth, and the put is dropped while it waits:
    // what a handler does when its client goes away mid-upload.
    let new = Generated {
        seed: 13,
        len: 3 * MIB,
    }
    .bytes();
    let body =
        stream::iter(sliced(new, BODY_PIECE).map(Ok::<_, Infallible>)).chain(stream::pending());
    let put = store.put_stream("k", body, PutOptions::new());
    ensure!(
        tokio::time::timeout(Duration::from_millis(300), put)
            .await
            .is_err(),
        "a put whose body never ends finished"
    );
    old.ensure_kept(&store).await?;

    // On SQLite the dropped put discards its file at once; on PostgreSQL its chunks wait
    // for the garbage collector.
    if backend.kind != Kind::Sqlite {
        tokio::time::sleep(IDLE_PAUSE).await;
        assert_eq!(datastore.collect_garbage(Duration::ZERO).await?, 1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while datastore.chunk_count().await? != old.chunks {
        ensure!(
            Instant::now() < deadline,
            "the dropped put left {} chunks behind",
            datastore.chunk_count().await? - old.chunks
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// How long a scenario waits so that what it just wrote is idle for a collection with no
/// idle limit: both the datastore's and the file system's times are coarser than a put.
const IDLE_PAUSE: Duration = Duration::from_millis(20);

pub(crate) async fn collected_upload_fails_its_put_and_keeps_old_value(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("collected");
    let old = OldValue::put(&datastore, &store, 10, 2 * MIB + 7).await?;

    // Just before its last piece, the body lets garbage collection run with no idle
    // limit: the put's staged upload is idle and unreferenced then, so it goes, and the
    // put must not point the object at what is gone.
    let new = Generated {
        seed: 11,
        len: 3 * MIB,
    }
    .bytes();
    let pieces: Vec<Bytes> = sliced(new, BODY_PIECE).collect();
    let last = pieces.len() - 1;
    let collected = Arc::new(AtomicU64::new(0));
    let body = stream::iter(pieces.into_iter().enumerate()).then(|(index, piece)| {
        let datastore = datastore.clone();
        let collected = collected.clone();
        async move {
            if index == last {
                tokio::time::sleep(IDLE_PAUSE).await;
                let count = datastore
                    .collect_garbage(Duration::ZERO)
                    .await
                    .map_err(io::Error::other)?;
                collected.store(count, Ordering::SeqCst);
            }
            Ok::<_, io::Error>(piece)
        }
    });
    match store.put_stream("k", body, PutOptions::new()).await {
        Err(StoreError::Collected { key }) => assert_eq!(key, "k"),
        other => bail!("a put whose upload was collected gave {other:?}"),
    }
    assert_eq!(collected.load(Ordering::SeqCst), 1);
    assert_eq!(datastore.chunk_count().await?, old.chunks);
    old.ensure_kept(&store).await?;

    // A value that is stored keeps its upload however idle it is.
    tokio::time::sleep(IDLE_PAUSE).await;
    assert_eq!(datastore.collect_garbage(Duration::ZERO).await?, 0);
    assert!(
        read_whole(&store, "k").await?.1 == old.value,
        "collection took a live value"
    );
    if backend.kind != Kind::Sqlite {
        return Ok(());
    }

    // On SQLite, a file whose upload is gone (a crash after a replace committed, before
    // its old file was removed) is collected too.
    let database = backend
        .url
        .strip_prefix("sqlite://")
        .context("a sqlite:// URL")?;
    let orphan = format!("{database}.blobs/{}", i64::MAX);
    std::fs::write(&orphan, vec![0_u8; CHUNK_SIZE + 1])?;
    assert_eq!(datastore.chunk_count().await?, old.chunks + 2);
    tokio::time::sleep(IDLE_PAUSE).await;
    assert_eq!(datastore.collect_garbage(Duration::ZERO).await?, 1);
    assert!(
        !std::path::Path::new(&orphan).exists(),
        "the orphaned file is still there"
    );
    assert_eq!(datastore.chunk_count().await?, old.chunks);
    assert!(
        read_whole(&store, "k").await?.1 == old.value,
        "collection took a live value"
    );
    Ok(())
}

/// The keys of the race and the base length of their values: two that take three chunks,
/// two that fit in their rows.
const RACE_KEYS: [(&str, usize); 4] = [
    ("big/0", 2_621_440),
    ("big/1", 2_621_440),
    ("small/0", 1024),
    ("small/1", 1024),
];

const RACE_WRITERS: u64 = 8;
const RACE_READERS: u64 = 8;
const RACE_DURATION: Duration = Duration::from_secs(4);

pub(crate) async fn concurrent_readers_see_only_whole_versions(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("race");
    let deadline = Instant::now() + RACE_DURATION;

    let mut writers = JoinSet::new();
    for writer in 0..RACE_WRITERS {
        writers.spawn(write_versions(store.clone(), writer, deadline));
    }
    let mut readers = JoinSet::new();
    for reader in 0..RACE_READERS {
        readers.spawn(read_versions(store.clone(), reader, deadline));
    }

    let mut writes = 0;
    while let Some(joined) = writers.join_next().await {
        writes += joined??;
    }
    let mut large_versions_read = Vec::new();
    while let Some(joined) = readers.join_next().await {
        large_versions_read.extend(joined??);
    }
    let reads = large_versions_read.len();
    large_versions_read.sort_unstable();
    large_versions_read.dedup();
    eprintln!(
        "{}: race: {writes} puts, {reads} reads of a large value ({} versions)",
        backend.kind.name(),
        large_versions_read.len()
    );
    assert!(
        large_versions_read.len() >= 2,
        "the readers saw {} versions of the large values: the race did not happen",
        large_versions_read.len()
    );

    // Every replaced value's chunks were freed with it.
    let mut live_chunks = 0;
    for (key, _) in RACE_KEYS {
        if let Some(meta) = store.head(key).await? {
            if meta.size > CHUNK_SIZE as u64 {
                live_chunks += meta.size.div_ceil(CHUNK_SIZE as u64);
            }
        }
    }
    assert_eq!(datastore.chunk_count().await?, live_chunks);
    Ok(())
}

/// Puts new versions (and now and then a delete) until `deadline`; returns how many puts.
async fn write_versions(store: PluginStore, writer: u64, deadline: Instant) -> anyhow::Result<u64> {
    let mut puts = 0;
    for round in (0_u64..).take_while(|_| Instant::now() < deadline) {
        let (key, base_len) = RACE_KEYS[((writer + round) % 4) as usize];
        if round % 10 == 9 {
            store
                .delete(key)
                .await
                .with_context(|| format!("writer {writer} deleting {key}"))?;
            continue;
        }

        let version = round * RACE_WRITERS + writer + 1;
        let value = versioned_value(version, base_len);
        let options = PutOptions::new().content_type(version_content_type(version));
        let put = if round % 2 == 0 {
            store.put(key, value, options).await
        } else {
            let body = stream::iter(sliced(value, 100_003).map(Ok::<_, Infallible>));
            store.put_stream(key, body, options).await
        };
        put.with_context(|| format!("writer {writer} putting version {version} to {key}"))?;
        puts += 1;
    }
    Ok(puts)
}

/// Reads the keys until `deadline`, checking that each read is one whole version;
/// returns the versions of the large values read.
async fn read_versions(
    store: PluginStore,
    reader: u64,
    deadline: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut large_versions = Vec::new();
    for round in (0_u64..).take_while(|_| Instant::now() < deadline) {
        let (key, base_len) = RACE_KEYS[((reader + round) % 4) as usize];
        let Some(object) = store
            .get(key)
            .await
            .with_context(|| format!("reader {reader} getting {key}"))?
        else {
            continue;
        };

        let meta = object.meta.clone();
        let value = object
            .bytes()
            .await
            .with_context(|| format!("reader {reader} reading {key}"))?;
        let version = whole_version(&meta, &value, base_len)
            .with_context(|| format!("reader {reader} reading {key}"))?;
        if base_len > CHUNK_SIZE {
            large_versions.push(version);
        }
    }
    Ok(large_versions)
}

/// Version `version` of a value: the version number over and over, a little longer than
/// `base_len` so that versions also differ in size.
fn versioned_value(version: u64, base_len: usize) -> Bytes {
    let words = base_len / 8 + usize::try_from(version % 64).unwrap_or_default();
    Bytes::from(version.to_le_bytes().repeat(words))
}

fn version_content_type(version: u64) -> String {
    format!("application/x-version-{version}")
}

/// The version `value` holds, when it is exactly one whole version and its metadata
/// belongs to that same version.
fn whole_version(meta: &ObjectMeta, value: &[u8], base_len: usize) -> anyhow::Result<u64> {
    ensure!(
        value.len() as u64 == meta.size,
        "read {} bytes of an object of {}",
        value.len(),
        meta.size
    );
    let stamp = value.get(..8).context("a value shorter than its version")?;
    let version = u64::from_le_bytes(stamp.try_into()?);
    ensure!(
        value == &versioned_value(version, base_len)[..],
        "the value is not version {version} whole: it mixes versions"
    );
    ensure!(
        meta.content_type == version_content_type(version),
        "the value of version {version} came with the metadata of {}",
        meta.content_type
    );
    ensure!(
        meta.etag == sha256_hex(value),
        "the etag of version {version} is not its sha256"
    );
    Ok(version)
}

/// The prefixes of the paged keys: some inside others, and some that sort right beside
/// `a/` byte by byte (`-` before `/`, `~` after).
const PAGING_PREFIXES: [&str; 8] = ["a/", "a/b/", "b/", "ü/", "日本/", "A/", "a-", "a~"];

const PAGING_KEYS: usize = 10_000;
const PAGE_LIMIT: u32 = 777;

/// How many tasks put the paged keys at once.
const PAGING_INSERTERS: usize = 16;

pub(crate) async fn paging_lists_every_key_once_in_byte_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let datastore = backend.open().await?;
    let store = datastore.namespace("paging");

    // Numbers without padding, so that byte order is not number order.
    let keys: Arc<Vec<String>> = Arc::new(
        (0..PAGING_KEYS)
            .map(|index| format!("{}{index}", PAGING_PREFIXES[index % PAGING_PREFIXES.len()]))
            .collect(),
    );
    let mut inserters = JoinSet::new();
    for inserter in 0..PAGING_INSERTERS {
        let store = store.clone();
        let keys = keys.clone();
        inserters.spawn(async move {
            for key in keys.iter().skip(inserter).step_by(PAGING_INSERTERS) {
                store
                    .put(key, key.clone(), PutOptions::new())
                    .await
                    .with_context(|| format!("put {key}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = inserters.join_next().await {
        joined??;
    }

    // `str` orders by bytes, as the datastore must.
    let mut sorted = keys.to_vec();
    sorted.sort();
    let listed = list_keys(&store, "", PAGE_LIMIT).await?;
    assert_same_keys(&listed, &sorted, "the whole namespace");

    for prefix in ["a/", "a/b/", "ü/", "日本/", "a", "nothing/"] {
        let expected: Vec<String> = sorted
            .iter()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect();
        let listed = list_keys(&store, prefix, PAGE_LIMIT).await?;
        assert_same_keys(&listed, &expected, &format!("prefix {prefix:?}"));
    }

    // A page holds at most 1000 objects, each with its metadata.
    let page = store.list("", None, 5000).await?;
    assert_eq!(page.objects.len(), 1000);
    assert_eq!(page.next.as_deref(), Some(sorted[999].as_str()));
    for meta in &page.objects {
        assert_eq!(meta.size, meta.key.len() as u64);
        assert_eq!(meta.etag, sha256_hex(meta.key.as_bytes()));
    }
    Ok(())
}

/// Checks a listing against the keys expected, without printing ten thousand keys.
fn assert_same_keys(listed: &[String], expected: &[String], what: &str) {
    let first_difference = listed.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        first_difference.is_none() && listed.len() == expected.len(),
        "{what}: listed {} keys, expected {}; first difference at {first_difference:?}: \
         {:?} instead of {:?}",
        listed.len(),
        expected.len(),
        first_difference.map(|index| &listed[index]),
        first_difference.map(|index| &expected[index]),
    );
}
