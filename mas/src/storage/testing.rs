//! Test databases: a fresh SQLite file or a fresh PostgreSQL database (from `DATABASE_URL`)
//! per test, and [`test_on_both_backends!`] to run one test function on each. Storage-function
//! tests start with [`migrated`], which gives a migrated database, a connection, a
//! [`MockClock`] and a seeded RNG; `fixtures` adds rows those tests build on.

pub(crate) mod fixtures;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore as _;
use rand_chacha::ChaCha20Rng;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection as _, PgConnection};

use super::Database;
use crate::clock::MockClock;
use crate::config::DatabaseConfig;
use crate::rng::RngSource;

/// What a storage-function test works with.
pub(crate) struct TestDb {
    /// The database (for a second connection).
    pub(crate) db: Database,
    /// A connection, for the functions under test.
    pub(crate) conn: PoolConnection<Any>,
    /// The injected clock, at 2024-01-01T00:00:00Z.
    pub(crate) clock: MockClock,
    /// A generator seeded with 42.
    pub(crate) rng: ChaCha20Rng,
}

/// Migrates `db` and opens a connection.
pub(crate) async fn migrated(db: Database) -> TestDb {
    super::migrate(&db).await.unwrap();
    let conn = db.pool().acquire().await.unwrap();
    TestDb {
        db,
        conn,
        clock: MockClock::default(),
        rng: RngSource::seeded(42).fork(),
    }
}

/// The schema the PostgreSQL test databases use, as in the appliance.
pub(crate) const PG_SCHEMA: &str = "mas";

/// Runs `test` on a fresh, empty SQLite database in a temporary directory.
pub(crate) async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    let db = Database::connect(&test_config(uri, None)).await.unwrap();
    test(db.clone()).await;
    db.close().await;
}

/// Runs `test` on a fresh PostgreSQL database (schema `mas`), dropped afterwards even if the
/// test panics. Without `DATABASE_URL` it is skipped with a message, or fails under `CI`.
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_postgres_with_schema(Some(PG_SCHEMA), test).await;
}

/// [`on_postgres`] with another schema, or none (the default `public`).
pub(crate) async fn on_postgres_with_schema<F, Fut>(schema: Option<&str>, test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let name = unique_database_name();
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let create = format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
    );
    sqlx::raw_sql(&create).execute(&mut admin).await.unwrap();

    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let config = test_config(url.to_string(), schema.map(str::to_owned));
    let db = Database::connect(&config).await.unwrap();
    // On its own task, so a panic comes back as an error and the database is still dropped.
    let outcome = tokio::spawn(test(db.clone())).await;
    db.close().await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::raw_sql(&drop).execute(&mut admin).await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// `DATABASE_URL`, or `None` after telling the developer the test is skipped.
fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("DATABASE_URL must be set in CI (source start/lib/postgres.sh)")
        }
        Err(_) => {
            eprintln!("skipping PostgreSQL: DATABASE_URL not set");
            None
        }
    }
}

fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "mas_test_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::rngs::OsRng.next_u32()
    )
}

fn test_config(uri: String, schema: Option<String>) -> DatabaseConfig {
    DatabaseConfig {
        uri: Some(uri),
        schema,
        max_connections: 4,
        connect_timeout: 10,
        ..DatabaseConfig::default()
    }
}

/// Turns `async fn name(db: Database)` functions into two tests each, `name::sqlite` and
/// `name::postgres`.
macro_rules! test_on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::storage::testing::on_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn postgres() {
                $crate::storage::testing::on_postgres(super::$name).await;
            }
        }
    )*};
}

pub(crate) use test_on_both_backends;
