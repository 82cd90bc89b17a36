//! The scenarios that need a process of their own: the 1 GiB round trip, whose peak
//! memory no other test may pollute, and the put killed in the middle. Each is a parent
//! half, run as a trial, and a child half, run by this binary in a child process.

use std::convert::Infallible;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::stream::{self, StreamExt};
use kneedeep::store::CHUNK_SIZE;
use kneedeep::{DatastoreConfig, PutOptions};
use sqlx::{Connection, Row};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::values::{GENERATED_PIECE, Generated, MIB, list_keys, read_streamed};
use crate::{Backend, Kind, open_datastore};

/// Set in a child process of this binary to the role it plays instead of running the suite.
pub(crate) const CHILD_ROLE: &str = "KNEEDEEP_STORE_CHILD";

/// The datastore URL a child process opens.
const CHILD_URL: &str = "KNEEDEEP_STORE_CHILD_URL";

/// The child that puts and reads back 1 GiB and reports its memory.
const ROUND_TRIP_ROLE: &str = "round-trip";

/// The child that starts a large put and is killed in the middle of it.
const KILLED_PUT_ROLE: &str = "killed-put";

/// How much a 1 GiB put and get may grow the peak memory of the process.
const PEAK_GROWTH_LIMIT: u64 = 64 * MIB;

/// How long a child may take to report; far more than it needs, so only a hang trips it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// After this many pieces of its new value the killed put tells its parent to kill it.
const PIECES_BEFORE_KILL: usize = 6;

/// The signal `Child::start_kill` sends on Unix, which no process can catch.
const SIGKILL: i32 = 9;

pub(crate) async fn one_gib_round_trip_grows_memory_less_than_64_mib(
    backend: Backend,
) -> anyhow::Result<()> {
    let output = child_command(ROUND_TRIP_ROLE, &backend)?
        .output()
        .await
        .context("run the round-trip child")?;
    ensure!(
        output.status.success(),
        "the round-trip child failed: {}",
        output.status
    );
    let report = String::from_utf8(output.stdout)?;
    let field = |name: &str| -> anyhow::Result<&str> {
        report
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in the child's report {report:?}"))
    };
    let number = |name: &str| -> anyhow::Result<u64> { Ok(field(name)?.parse()?) };

    let growth = (number("peak_after_kib")? - number("rss_before_kib")?) * 1024;
    eprintln!(
        "{}: 1 GiB round trip: peak RSS growth {:.1} MiB (VmRSS before {} KiB, VmHWM after \
         {} KiB); put {:.1} s, get {:.1} s",
        backend.kind.name(),
        growth as f64 / MIB as f64,
        number("rss_before_kib")?,
        number("peak_after_kib")?,
        number("put_ms")? as f64 / 1000.0,
        number("get_ms")? as f64 / 1000.0,
    );

    assert_eq!(number("put_size")?, ONE_GIB.len);
    assert_eq!(number("meta_size")?, ONE_GIB.len);
    assert_eq!(number("read_size")?, ONE_GIB.len);
    assert!(number("largest_chunk")? <= CHUNK_SIZE as u64);
    assert_eq!(field("etag")?, field("expected")?);
    assert_eq!(field("read")?, field("expected")?);
    assert!(
        growth < PEAK_GROWTH_LIMIT,
        "a 1 GiB put and get grew the peak memory by {} MiB",
        growth / MIB
    );
    Ok(())
}

/// The value of the round trip.
const ONE_GIB: Generated = Generated {
    seed: 7,
    len: 1024 * MIB,
};

/// The role that puts [`ONE_GIB`] from a generated stream and reads it back chunk by
/// chunk, then reports on stdout its hashes and how its memory grew.
#[expect(
    clippy::print_stdout,
    reason = "the child reports to its parent on stdout"
)]
async fn round_trip_child(url: &str) -> anyhow::Result<()> {
    let expected = ONE_GIB.sha256();
    let datastore = open_datastore(url, DatastoreConfig::default().max_value_bytes).await?;
    let store = datastore.namespace("memory");

    let rss_before = status_kib("VmRSS")?;
    let started = Instant::now();
    let put = store
        .put_stream("one-gib", ONE_GIB.stream(), PutOptions::new())
        .await?;
    let put_time = started.elapsed();

    let started = Instant::now();
    let read = read_streamed(&store, "one-gib").await?;
    let get_time = started.elapsed();
    let peak_after = status_kib("VmHWM")?;

    println!(
        "expected={expected} etag={} read={} put_size={} meta_size={} read_size={} \
         largest_chunk={} rss_before_kib={rss_before} peak_after_kib={peak_after} put_ms={} \
         get_ms={}",
        put.etag,
        read.sha256,
        put.size,
        read.meta.size,
        read.size,
        read.largest_chunk,
        put_time.as_millis(),
        get_time.as_millis(),
    );
    Ok(())
}

pub(crate) async fn killed_put_leaves_old_value_whole(backend: Backend) -> anyhow::Result<()> {
    let old = Generated {
        seed: 8,
        len: 5 * MIB + 12_345,
    };
    let old_sha256 = old.sha256();
    let old_chunks = {
        let datastore = backend.open().await?;
        let options = PutOptions::new().content_type("application/x-old");
        let put = datastore
            .namespace("crash")
            .put_stream("k", old.stream(), options)
            .await?;
        assert_eq!(put.etag, old_sha256);
        datastore.chunk_count().await?
    };
    assert_eq!(old_chunks, 6);

    let mut child = child_command(KILLED_PUT_ROLE, &backend)?
        .spawn()
        .context("start the killed-put child")?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(CHILD_TIMEOUT, lines.next_line())
        .await
        .context("the child did not report its staged chunks in time")??
        .context("the child ended without staging chunks")?;
    let staged: u64 = line
        .strip_prefix("staged ")
        .with_context(|| format!("unexpected report {line:?}"))?
        .parse()?;
    ensure!(
        child.try_wait()?.is_none(),
        "the child's put ended before it could be killed"
    );
    child.start_kill()?;
    let status = child.wait().await?;
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the child ended with {status}"
    );

    if backend.kind == Kind::Sqlite {
        assert_eq!(sqlite_integrity_check(&backend.url).await?, ["ok"]);
    }

    let datastore = backend.open().await?;
    let store = datastore.namespace("crash");
    let read = read_streamed(&store, "k").await?;
    assert_eq!(read.meta.size, old.len);
    assert_eq!(read.size, old.len);
    assert_eq!(read.meta.etag, old_sha256);
    assert_eq!(read.sha256, old_sha256);
    assert_eq!(read.meta.content_type, "application/x-old");
    assert_eq!(list_keys(&store, "", 1000).await?, ["k"]);
    assert_chunks_complete(&backend).await?;

    let with_abandoned = datastore.chunk_count().await?;
    assert!(
        with_abandoned >= old_chunks + staged,
        "{with_abandoned} chunks after the kill: the abandoned upload's {staged} are not there"
    );
    eprintln!(
        "{}: killed put: {} chunks of the new value were staged at the kill",
        backend.kind.name(),
        with_abandoned - old_chunks
    );
    assert_eq!(datastore.collect_garbage(Duration::ZERO).await?, 1);
    assert_eq!(datastore.chunk_count().await?, old_chunks);
    assert_eq!(read_streamed(&store, "k").await?.sha256, old_sha256);
    Ok(())
}

/// The role that puts an endless new value to `k`, reports on stdout how many chunks it
/// has staged once it has sent [`PIECES_BEFORE_KILL`] pieces, then goes on writing as
/// fast as it can, so that its parent's kill most likely lands in the middle of a write.
#[expect(
    clippy::print_stdout,
    reason = "the child reports to its parent on stdout"
)]
async fn killed_put_child(url: &str) -> anyhow::Result<()> {
    let datastore = open_datastore(url, DatastoreConfig::default().max_value_bytes).await?;
    let store = datastore.namespace("crash");

    let endless = Generated {
        seed: 9,
        len: u64::MAX,
    };
    let body = stream::iter(endless.pieces().enumerate()).then(|(index, piece)| async move {
        if index == PIECES_BEFORE_KILL {
            // The put asks for a piece only once it has written out the ones before.
            let sent = (PIECES_BEFORE_KILL * GENERATED_PIECE) as u64;
            println!("staged {}", (sent - 1) / CHUNK_SIZE as u64);
        }
        Ok::<_, Infallible>(piece)
    });
    let ended = store.put_stream("k", body, PutOptions::new()).await;
    bail!("the put was to be killed, but it ended: {ended:?}")
}

/// Runs `role` in a child process of this binary, on `backend`'s datastore.
fn child_command(role: &str, backend: &Backend) -> anyhow::Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .env(CHILD_ROLE, role)
        .env(CHILD_URL, &backend.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    Ok(command)
}

pub(crate) fn run_child(role: &str) -> ExitCode {
    let outcome = (|| -> anyhow::Result<()> {
        let url = std::env::var(CHILD_URL).with_context(|| format!("{CHILD_URL} is not set"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        match role {
            ROUND_TRIP_ROLE => runtime.block_on(round_trip_child(&url)),
            KILLED_PUT_ROLE => runtime.block_on(killed_put_child(&url)),
            other => bail!("unknown child role {other:?}"),
        }
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("child {role}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A field of /proc/self/status counted in kB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kib = value
        .trim()
        .strip_suffix("kB")
        .with_context(|| format!("{field} is not in kB: {value:?}"))?;
    Ok(kib.trim().parse()?)
}

/// `PRAGMA integrity_check` on the SQLite file, through a connection of its own.
async fn sqlite_integrity_check(url: &str) -> anyhow::Result<Vec<String>> {
    let mut connection = sqlx::SqliteConnection::connect(url).await?;
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await?;
    let verdict = rows
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    connection.close().await?;
    Ok(verdict)
}

/// For every object whose value is in chunks: its size, how many chunks its upload has,
/// their total length, and their lowest and highest sequence numbers.
const CHUNKED_OBJECTS: &str = "SELECT o.size, \
    (SELECT CAST(COUNT(*) AS BIGINT) FROM kd_chunks c WHERE c.upload_id = o.upload_id), \
    (SELECT CAST(COALESCE(SUM(LENGTH(c.data)), 0) AS BIGINT) FROM kd_chunks c \
        WHERE c.upload_id = o.upload_id), \
    (SELECT CAST(COALESCE(MIN(c.seq), -1) AS BIGINT) FROM kd_chunks c \
        WHERE c.upload_id = o.upload_id), \
    (SELECT CAST(COALESCE(MAX(c.seq), -1) AS BIGINT) FROM kd_chunks c \
        WHERE c.upload_id = o.upload_id) \
    FROM kd_objects o WHERE o.upload_id IS NOT NULL";

/// Checks that every large object has all of its value: on PostgreSQL every chunk in the
/// tables, on SQLite its file beside the database, whole.
async fn assert_chunks_complete(backend: &Backend) -> anyhow::Result<()> {
    let rows: Vec<[i64; 5]> = match backend.kind {
        Kind::Sqlite => return assert_files_complete(backend).await,
        Kind::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&backend.url).await?;
            let rows = sqlx::query(CHUNKED_OBJECTS)
                .fetch_all(&mut connection)
                .await?;
            rows.iter().map(integer_columns).collect::<Result<_, _>>()?
        }
    };

    assert!(!rows.is_empty(), "no object is stored in chunks");
    let chunk_size = i64::try_from(CHUNK_SIZE)?;
    for [size, chunks, length, first, last] in rows {
        let expected = size.div_euclid(chunk_size) + i64::from(size % chunk_size != 0);
        assert_eq!(
            (chunks, length, first, last),
            (expected, size, 0, expected - 1),
            "an object of {size} bytes has {chunks} chunks ({length} bytes, {first}..={last})"
        );
    }
    Ok(())
}

/// Checks that every object whose row points at an upload has that upload's file, of
/// exactly its size, and that no staged file became a value.
async fn assert_files_complete(backend: &Backend) -> anyhow::Result<()> {
    let database = backend
        .url
        .strip_prefix("sqlite://")
        .context("a sqlite:// URL")?;
    let mut connection = sqlx::SqliteConnection::connect(&backend.url).await?;
    let rows = sqlx::query("SELECT size, upload_id FROM kd_objects WHERE upload_id IS NOT NULL")
        .fetch_all(&mut connection)
        .await?;
    connection.close().await?;

    assert!(!rows.is_empty(), "no object is stored in a file");
    for row in &rows {
        let size: i64 = row.try_get(0)?;
        let upload_id: i64 = row.try_get(1)?;
        let file = format!("{database}.blobs/{upload_id}");
        let length = std::fs::metadata(&file)
            .with_context(|| format!("the file of an object of {size} bytes"))?
            .len();
        assert_eq!(
            length,
            u64::try_from(size)?,
            "an object of {size} bytes has a file of {length}"
        );
    }
    Ok(())
}

/// The first five columns of `row`, each a 64-bit integer.
fn integer_columns<R: Row>(row: &R) -> Result<[i64; 5], sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok([
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    ])
}
