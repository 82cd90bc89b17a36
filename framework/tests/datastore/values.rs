//! Values made on the fly, bodies that fail or look at the datastore in passing, and
//! the reads, listings and checks the scenarios share.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, ensure};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use kneedeep::{Datastore, ObjectMeta, PluginStore, StoreError};
use sha2::{Digest, Sha256};

pub(crate) const MIB: u64 = 1024 * 1024;

/// Generated values come in pieces of this many bytes: not a multiple of the chunk size,
/// so pieces straddle chunk boundaries.
pub(crate) const GENERATED_PIECE: usize = 1_000_003;

/// Bodies cut from a value in memory come in pieces of this many bytes.
pub(crate) const BODY_PIECE: usize = 256 * 1024;

/// A value made on the fly, never whole in memory: pieces of [`GENERATED_PIECE`] bytes,
/// each a pattern drawn from `seed` with the piece's number at its start, so that a lost,
/// repeated or reordered piece changes the value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Generated {
    pub(crate) seed: u64,
    pub(crate) len: u64,
}

impl Generated {
    pub(crate) fn pieces(self) -> impl Iterator<Item = Bytes> + Send {
        let pattern = pattern(self.seed, GENERATED_PIECE);
        let piece_len = GENERATED_PIECE as u64;
        (0..self.len.div_ceil(piece_len)).map(move |index| {
            let remaining = self.len - index * piece_len;
            let len = usize::try_from(remaining.min(piece_len)).unwrap_or(GENERATED_PIECE);
            let mut piece = BytesMut::from(&pattern[..len]);
            let stamp = index.to_le_bytes();
            let stamped = stamp.len().min(len);
            piece[..stamped].copy_from_slice(&stamp[..stamped]);
            piece.freeze()
        })
    }

    pub(crate) fn stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        stream::iter(self.pieces().map(Ok))
    }

    /// The whole value in memory; only for small ones.
    pub(crate) fn bytes(self) -> Bytes {
        self.pieces()
            .fold(BytesMut::new(), |mut value, piece| {
                value.extend_from_slice(&piece);
                value
            })
            .freeze()
    }

    pub(crate) fn sha256(self) -> String {
        let mut hasher = Sha256::new();
        for piece in self.pieces() {
            hasher.update(&piece);
        }
        hex::encode(hasher.finalize())
    }
}

/// `len` bytes of xorshift drawn from `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut pattern = Vec::with_capacity(len + 8);
    while pattern.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        pattern.extend_from_slice(&state.to_le_bytes());
    }
    pattern.truncate(len);
    pattern
}

/// `value` cut into pieces of `piece_len` bytes, without copying.
pub(crate) fn sliced(value: Bytes, piece_len: usize) -> impl Iterator<Item = Bytes> + Send {
    (0..value.len())
        .step_by(piece_len)
        .map(move |start| value.slice(start..value.len().min(start + piece_len)))
}

/// A body of `value` in pieces of [`BODY_PIECE`] bytes, then `failure` if there is one.
/// Just before its last item it stores the datastore's chunk count in `staged`: it shows
/// what the put had written before it was refused.
pub(crate) fn probed_body(
    value: Bytes,
    failure: Option<io::Error>,
    datastore: Datastore,
    staged: Arc<AtomicU64>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send {
    let mut items: Vec<Result<Bytes, io::Error>> = sliced(value, BODY_PIECE).map(Ok).collect();
    items.extend(failure.map(Err));
    let last = items.len() - 1;

    stream::iter(items.into_iter().enumerate()).then(move |(index, item)| {
        let datastore = datastore.clone();
        let staged = staged.clone();
        async move {
            if index == last {
                let count = datastore.chunk_count().await.map_err(io::Error::other)?;
                staged.store(count, Ordering::SeqCst);
            }
            item
        }
    })
}

/// Reads the object under `key` whole: its metadata and its value.
pub(crate) async fn read_whole(
    store: &PluginStore,
    key: &str,
) -> anyhow::Result<(ObjectMeta, Vec<u8>)> {
    let object = store
        .get(key)
        .await?
        .with_context(|| format!("no object under {key:?}"))?;
    let meta = object.meta.clone();
    Ok((meta, object.bytes().await?.to_vec()))
}

/// What reading a value chunk by chunk found.
pub(crate) struct StreamedRead {
    pub(crate) meta: ObjectMeta,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) largest_chunk: u64,
}

/// Reads the object under `key` chunk by chunk, keeping none of it.
pub(crate) async fn read_streamed(store: &PluginStore, key: &str) -> anyhow::Result<StreamedRead> {
    let mut object = store
        .get(key)
        .await?
        .with_context(|| format!("no object under {key:?}"))?;

    let mut hasher = Sha256::new();
    let mut size = 0;
    let mut largest_chunk = 0;
    while let Some(chunk) = object.body.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        largest_chunk = largest_chunk.max(chunk.len() as u64);
        hasher.update(&chunk);
    }
    Ok(StreamedRead {
        meta: object.meta,
        sha256: hex::encode(hasher.finalize()),
        size,
        largest_chunk,
    })
}

/// Lists every key under `prefix`, `limit` per page, checking that only the last page
/// is short.
pub(crate) async fn list_keys(
    store: &PluginStore,
    prefix: &str,
    limit: u32,
) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(prefix, cursor.as_deref(), limit).await?;
        let full = page.objects.len() == limit as usize;
        ensure!(
            page.objects.len() <= limit as usize,
            "a page over its limit"
        );
        ensure!(full || page.next.is_none(), "a short page before the last");
        keys.extend(page.objects.into_iter().map(|meta| meta.key));

        let Some(next) = page.next else {
            return Ok(keys);
        };
        cursor = Some(next);
    }
}

pub(crate) fn sha256_hex(value: &[u8]) -> String {
    hex::encode(Sha256::digest(value))
}

pub(crate) fn assert_invalid_key<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    reason_part: &str,
) {
    match result {
        Err(error @ StoreError::InvalidKey { reason, .. }) => {
            assert!(reason.contains(reason_part), "{reason:?}");
            assert!(error.to_string().contains(reason), "{error}");
        }
        other => panic!("expected an invalid key ({reason_part}), got {other:?}"),
    }
}

pub(crate) fn assert_precondition_failed(
    result: Result<ObjectMeta, StoreError>,
    expected_key: &str,
) {
    match result {
        Err(StoreError::PreconditionFailed { key, .. }) => assert_eq!(key, expected_key),
        other => panic!("expected a failed precondition on {expected_key:?}, got {other:?}"),
    }
}
