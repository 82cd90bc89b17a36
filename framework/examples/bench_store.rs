//! The datastore's benchmarks, run by `cargo xtask bench`: each line measures the
//! datastore and its baseline side by side in one run and prints their ratio.
//!
//! Run with `cargo run --release -p kneedeep --example bench_store -- [--quick]`.
//! Each large-value measurement runs in a child process of its own, so that its peak
//! memory is its own.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use kneedeep::{Datastore, DatastoreConfig, PutOptions};
use sqlx::Connection;

const MIB: usize = 1024 * 1024;

/// The PostgreSQL the benchmarks use when it answers.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Set in a child process to the backend URL of a large-value run.
const CHILD_URL: &str = "KNEEDEEP_BENCH_LARGE_URL";

/// Set in a child process to the number of bytes of a large-value run.
const CHILD_BYTES: &str = "KNEEDEEP_BENCH_LARGE_BYTES";

/// Set in a child process to the file a plain-file run writes.
const CHILD_FILE: &str = "KNEEDEEP_BENCH_FILE";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return large_child(&url, child_bytes()?).await;
    }
    if let Ok(file) = std::env::var(CHILD_FILE) {
        return file_child(Path::new(&file), child_bytes()?);
    }

    let quick = std::env::args().any(|arg| arg == "--quick");
    let large_bytes = if quick { 64 * MIB } else { 256 * MIB };
    let small_count = if quick { 1_000 } else { 5_000 };

    let folder = tempfile::tempdir_in(".").context("create a folder for the benchmark")?;
    let mut backends = vec![("sqlite", sqlite_url(&folder.path().join("bench.db")))];
    match postgres_database().await {
        Ok(url) => backends.push(("postgres", url)),
        Err(error) => println!("postgres: skipped, not reachable at {POSTGRES_URL}: {error:#}"),
    }

    println!("| measurement | datastore | baseline | ratio | target | met |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let file = run_child(
        &[(
            CHILD_FILE,
            folder.path().join("plain.bin").display().to_string(),
        )],
        large_bytes,
    )?;
    for (backend, url) in &backends {
        let large = run_child(&[(CHILD_URL, url.clone())], large_bytes)?;
        let mib = large_bytes / MIB;
        row(
            &format!("{backend}: {mib} MiB put+get, MiB/s (baseline: a plain file, fsynced)"),
            large.throughput,
            file.throughput,
            0.5,
        );
        println!(
            "| {backend}: {mib} MiB put+get, peak RSS growth MiB | {:.1} | | | < 64 | {} |",
            large.peak_growth_mib,
            if large.peak_growth_mib < 64.0 {
                "yes"
            } else {
                "NO"
            },
        );

        let small = small_objects(url, small_count).await?;
        row(
            &format!("{backend}: 1 KiB put, ops/s (baseline: sqlx INSERT)"),
            small.put,
            small.insert,
            0.8,
        );
        row(
            &format!("{backend}: 1 KiB get, ops/s (baseline: sqlx SELECT)"),
            small.get,
            small.select,
            0.8,
        );
    }

    if let Some((_, url)) = backends.iter().find(|(backend, _)| *backend == "postgres") {
        drop_postgres_database(url).await?;
    }
    Ok(())
}

fn row(what: &str, measured: f64, baseline: f64, target: f64) {
    let ratio = measured / baseline;
    let met = if ratio >= target { "yes" } else { "NO" };
    println!("| {what} | {measured:.0} | {baseline:.0} | {ratio:.2} | >= {target} | {met} |");
}

fn child_bytes() -> anyhow::Result<usize> {
    let bytes = std::env::var(CHILD_BYTES).context("the child's byte count")?;
    bytes.parse().context("the child's byte count")
}

/// What a large-value child reports.
struct Large {
    /// MiB per second, counting the bytes written and read.
    throughput: f64,
    peak_growth_mib: f64,
}

/// Runs this program again with `env`, and reads the one line it prints.
fn run_child(env: &[(&str, String)], bytes: usize) -> anyhow::Result<Large> {
    let output = Command::new(std::env::current_exe()?)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .env(CHILD_BYTES, bytes.to_string())
        .output()
        .context("run a benchmark child")?;
    if !output.status.success() {
        bail!(
            "a benchmark child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let line = String::from_utf8(output.stdout)?;
    let mut fields = line.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(throughput)), Some(Ok(peak_growth_mib))) => Ok(Large {
            throughput,
            peak_growth_mib,
        }),
        _ => bail!("a benchmark child printed {line:?}"),
    }
}

/// Puts `bytes` through the datastore from a generated stream, reads them back, and
/// prints the throughput and the peak memory growth.
async fn large_child(url: &str, bytes: usize) -> anyhow::Result<()> {
    let config = DatastoreConfig {
        url: url.to_owned(),
        ..DatastoreConfig::default()
    };
    let store = Datastore::open(&config).await?.namespace("bench");
    let chunk = Bytes::from(vec![0x5a_u8; MIB]);
    let before = rss_kib("VmRSS")?;

    let started = Instant::now();
    let pieces = futures_util::stream::iter(
        (0..bytes / MIB).map(|_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    store.put_stream("large", pieces, PutOptions::new()).await?;
    let mut object = store.get("large").await?.context("the value just put")?;
    let mut read = 0;
    while let Some(piece) = object.body.next().await {
        read += piece?.len();
    }
    let elapsed = started.elapsed();
    if read != bytes {
        bail!("read {read} bytes of {bytes}");
    }

    report(bytes, elapsed, before)
}

/// Writes `bytes` to a plain file and fsyncs it, then reads it back, and prints the
/// throughput the same way.
fn file_child(path: &Path, bytes: usize) -> anyhow::Result<()> {
    let chunk = vec![0x5a_u8; MIB];
    let before = rss_kib("VmRSS")?;

    let started = Instant::now();
    let mut file = std::fs::File::create(path)?;
    for _ in 0..bytes / MIB {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    drop(file);
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0_u8; MIB];
    let mut read = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let elapsed = started.elapsed();
    if read != bytes {
        bail!("read {read} bytes of {bytes}");
    }

    report(bytes, elapsed, before)
}

fn report(bytes: usize, elapsed: Duration, rss_before_kib: u64) -> anyhow::Result<()> {
    let throughput = (2 * bytes / MIB) as f64 / elapsed.as_secs_f64();
    let growth_mib = rss_kib("VmHWM")?.saturating_sub(rss_before_kib) as f64 / 1024.0;
    println!("{throughput} {growth_mib}");
    Ok(())
}

/// A field of `/proc/self/status`, in KiB.
fn rss_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("{field} in /proc/self/status"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    Ok(kib.parse()?)
}

/// Operations per second on 1 KiB objects, through the datastore and directly.
struct Small {
    put: f64,
    get: f64,
    insert: f64,
    select: f64,
}

async fn small_objects(url: &str, count: usize) -> anyhow::Result<Small> {
    let config = DatastoreConfig {
        url: url.to_owned(),
        ..DatastoreConfig::default()
    };
    let store = Datastore::open(&config).await?.namespace("bench");
    let value = Bytes::from(vec![0x42_u8; 1024]);
    let keys: Vec<String> = (0..count).map(|i| format!("small/{i:08}")).collect();

    let started = Instant::now();
    for key in &keys {
        store.put(key, value.clone(), PutOptions::new()).await?;
    }
    let put = per_second(count, started.elapsed());

    let started = Instant::now();
    for key in &keys {
        let object = store.get(key).await?.context("a value just put")?;
        object.bytes().await?;
    }
    let get = per_second(count, started.elapsed());

    let (insert, select) = if url.starts_with("sqlite:") {
        direct_sqlite(url, &keys, &value).await?
    } else {
        direct_postgres(url, &keys, &value).await?
    };
    Ok(Small {
        put,
        get,
        insert,
        select,
    })
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The same inserts and selects, straight through sqlx pools on the same SQLite file,
/// set up as the datastore sets up its own: one writing connection, several reading.
async fn direct_sqlite(url: &str, keys: &[String], value: &[u8]) -> anyhow::Result<(f64, f64)> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::str::FromStr;

    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    direct(&write, &read, "BLOB", keys, value).await
}

/// The same inserts and selects, straight through a sqlx pool on the same PostgreSQL
/// database.
async fn direct_postgres(url: &str, keys: &[String], value: &[u8]) -> anyhow::Result<(f64, f64)> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    direct(&pool, &pool, "BYTEA", keys, value).await
}

/// Inserts then selects every key in a table of its own: operations per second of each.
async fn direct<DB>(
    write: &sqlx::Pool<DB>,
    read: &sqlx::Pool<DB>,
    bytes_type: &str,
    keys: &[String],
    value: &[u8],
) -> anyhow::Result<(f64, f64)>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let create =
        format!("CREATE TABLE direct (key {bytes_type} PRIMARY KEY, value {bytes_type} NOT NULL)");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(write)
        .await?;

    let started = Instant::now();
    for key in keys {
        sqlx::query("INSERT INTO direct (key, value) VALUES ($1, $2)")
            .bind(key.as_bytes())
            .bind(value)
            .execute(write)
            .await?;
    }
    let insert = per_second(keys.len(), started.elapsed());

    let started = Instant::now();
    for key in keys {
        sqlx::query("SELECT value FROM direct WHERE key = $1")
            .bind(key.as_bytes())
            .fetch_one(read)
            .await?;
    }
    Ok((insert, per_second(keys.len(), started.elapsed())))
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Creates a fresh database for this run and returns its URL.
async fn postgres_database() -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(POSTGRES_URL).await?;
    let name = format!("kd_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    Ok(POSTGRES_URL.replace("/test", &format!("/{name}")))
}

async fn drop_postgres_database(url: &str) -> anyhow::Result<()> {
    let name = url.rsplit('/').next().context("a database name")?;
    let mut admin = sqlx::PgConnection::connect(POSTGRES_URL).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
