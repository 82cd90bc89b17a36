//! The datastore suite: every scenario runs once on a SQLite file and once on a fresh
//! PostgreSQL database. The memory and crash scenarios run part of themselves in a child
//! process of this binary, which is why the suite brings its own harness.

// The modules live in a folder of their own: files beside this one would be taken as
// test targets of their own.
#[path = "datastore/processes.rs"]
mod processes;
#[path = "datastore/scenarios.rs"]
mod scenarios;
#[path = "datastore/values.rs"]
mod values;

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use futures_util::future::BoxFuture;
use kneedeep::{Datastore, DatastoreConfig};
use libtest_mimic::{Arguments, Failed, Trial};
use sqlx::Connection;

/// One scenario, run on the backend it is handed.
type Scenario = fn(Backend) -> BoxFuture<'static, anyhow::Result<()>>;

/// Names each scenario after its function.
macro_rules! scenarios {
    ($($module:ident::$scenario:ident),* $(,)?) => {
        [$((
            stringify!($scenario),
            (|backend: Backend| -> BoxFuture<'static, anyhow::Result<()>> {
                Box::pin($module::$scenario(backend))
            }) as Scenario,
        )),*]
    };
}

/// Every scenario, the longest first so that the short ones run beside them.
const SCENARIOS: [(&str, Scenario); 10] = scenarios![
    processes::one_gib_round_trip_grows_memory_less_than_64_mib,
    scenarios::concurrent_readers_see_only_whole_versions,
    scenarios::paging_lists_every_key_once_in_byte_order,
    processes::killed_put_leaves_old_value_whole,
    scenarios::put_get_head_delete_list_keep_values_and_metadata,
    scenarios::compare_and_swap_refuses_stale_etags,
    scenarios::over_the_limit_put_keeps_old_value_and_leaves_no_chunks,
    scenarios::failing_body_keeps_old_value_and_leaves_no_chunks,
    scenarios::dropped_put_keeps_old_value_and_leaves_no_chunks,
    scenarios::collected_upload_fails_its_put_and_keeps_old_value,
];

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(processes::CHILD_ROLE) {
        return processes::run_child(&role);
    }

    let arguments = Arguments::from_args();
    let trials = SCENARIOS
        .iter()
        .flat_map(|&(name, scenario)| {
            [Kind::Sqlite, Kind::Postgres].map(|kind| {
                Trial::test(format!("{}::{name}", kind.name()), move || {
                    run_trial(kind, scenario)
                })
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}

/// Which database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// Where one scenario's datastore lives: a SQLite file or a PostgreSQL database of its own.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    pub(crate) kind: Kind,
    pub(crate) url: String,
}

impl Backend {
    /// Opens the datastore with the default limit on values.
    pub(crate) async fn open(&self) -> anyhow::Result<Datastore> {
        open_datastore(&self.url, DatastoreConfig::default().max_value_bytes).await
    }

    pub(crate) async fn open_with_limit(&self, max_value_bytes: u64) -> anyhow::Result<Datastore> {
        open_datastore(&self.url, max_value_bytes).await
    }
}

/// Opens the datastore at `url`; a child process opens it from the URL alone.
pub(crate) async fn open_datastore(url: &str, max_value_bytes: u64) -> anyhow::Result<Datastore> {
    let config = DatastoreConfig {
        url: url.to_owned(),
        max_value_bytes,
    };
    Datastore::open(&config)
        .await
        .with_context(|| format!("open the datastore at {url}"))
}

/// What a trial creates for its backend, and removes when the scenario is over.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

/// Runs one scenario on a fresh place of `kind`, in a runtime of its own.
fn run_trial(kind: Kind, scenario: Scenario) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let Some((backend, place)) = create_place(kind).await.map_err(failed)? else {
            return Ok(());
        };

        // The scenario runs as a task, so that its panic comes back here and the place
        // is removed before the panic goes on.
        let outcome = tokio::spawn(scenario(backend)).await;
        let removed = remove_place(place).await;

        match outcome {
            Ok(result) => result.map_err(failed)?,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => return Err(failed(error.into())),
            },
        }
        removed.map_err(failed)
    })
}

fn failed(error: anyhow::Error) -> Failed {
    Failed::from(format!("{error:#}"))
}

/// A new SQLite file in a temporary folder, or a new PostgreSQL database. `None` when
/// PostgreSQL is not reachable and `CI` is not set: the scenario is skipped.
async fn create_place(kind: Kind) -> anyhow::Result<Option<(Backend, Place)>> {
    if kind == Kind::Sqlite {
        let folder = tempfile::tempdir().context("create a temporary folder")?;
        let url = format!("sqlite://{}", folder.path().join("datastore.db").display());
        return Ok(Some((Backend { kind, url }, Place::Sqlite(folder))));
    }

    let admin_url = std::env::var("KNEEDEEP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(error) if std::env::var_os("CI").is_some() => {
            bail!("PostgreSQL is required under CI but not reachable at {admin_url}: {error}")
        }
        Err(error) => {
            eprintln!("skipped: PostgreSQL not reachable at {admin_url}: {error}");
            return Ok(None);
        }
    };

    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).context("draw a database name")?;
    let database = format!("kd_test_{}", hex::encode(random));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("create the database {database}"))?;
    admin.close().await?;

    let url = with_database(&admin_url, &database)?;
    let place = Place::Postgres {
        admin_url,
        database,
    };
    Ok(Some((Backend { kind, url }, place)))
}

async fn remove_place(place: Place) -> anyhow::Result<()> {
    match place {
        Place::Sqlite(folder) => folder.close().context("remove the temporary folder"),
        Place::Postgres {
            admin_url,
            database,
        } => {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            let statement = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .with_context(|| format!("drop the database {database}"))?;
            admin.close().await?;
            Ok(())
        }
    }
}

/// `url` (`postgres://user@host:port/db?options`) with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (address, options) = match url.split_once('?') {
        Some((address, options)) => (address, format!("?{options}")),
        None => (url, String::new()),
    };
    let authority_start = address.find("://").context("a URL with a scheme")? + 3;
    let server = match address[authority_start..].find('/') {
        Some(path_start) => &address[..authority_start + path_start],
        None => address,
    };
    Ok(format!("{server}/{database}{options}"))
}
