//! Building the `Any` pool for each backend. The `Any` driver only takes a URL, so the
//! per-backend settings that a URL cannot carry are applied in an after-connect hook.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, ConnectOptions as _, Connection as _, Executor as _};

use super::{StorageError, quote_identifier};
use crate::config::{DatabaseBackend, DatabaseConfig};

/// How long SQLite waits on a lock held by another connection before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the pool (and one connection, so a bad URL or password fails here).
pub(super) async fn pool(
    config: &DatabaseConfig,
    backend: DatabaseBackend,
) -> Result<AnyPool, StorageError> {
    sqlx::any::install_default_drivers();
    let uri = config
        .uri
        .as_deref()
        .ok_or_else(|| StorageError::Config("required".to_owned()))?;
    let options = pool_options(config);
    let pool = match backend {
        DatabaseBackend::Sqlite => {
            let url = prepare_sqlite(uri).await?;
            // `synchronous = NORMAL`: in WAL mode a commit no longer waits for an fsync (the
            // WAL is synced at checkpoints). The database cannot be corrupted this way; a power
            // loss may undo the last commits (a token handed out just before is then unknown
            // and the client logs in again). It saves an fsync on every token exchange.
            let pragmas = format!(
                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL;",
                SQLITE_BUSY_TIMEOUT.as_millis()
            );
            with_statement_on_connect(options, pragmas)
                .connect(&url)
                .await
        }
        DatabaseBackend::Postgres => match &config.schema {
            Some(schema) => {
                let statement = format!("SET search_path TO {}", quote_identifier(schema));
                with_statement_on_connect(options, statement)
                    .connect(uri)
                    .await
            }
            None => options.connect(uri).await,
        },
    };
    pool.map_err(StorageError::Connect)
}

fn pool_options(config: &DatabaseConfig) -> AnyPoolOptions {
    AnyPoolOptions::new()
        // No `ping` on every acquire: it doubled the round trips of introspection (one query
        // per Synapse request). A broken connection fails the one request that uses it.
        .test_before_acquire(false)
        .min_connections(config.min_connections)
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(config.connect_timeout))
        .idle_timeout(config.idle_timeout.map(Duration::from_secs))
        .max_lifetime(config.max_lifetime.map(Duration::from_secs))
}

/// Runs `statement` (one or more statements, no parameters) on every new connection.
fn with_statement_on_connect(options: AnyPoolOptions, statement: String) -> AnyPoolOptions {
    let statement: Arc<str> = statement.into();
    options.after_connect(move |connection, _| {
        let statement = Arc::clone(&statement);
        Box::pin(async move {
            connection.execute(&*statement).await?;
            Ok(())
        })
    })
}

/// Creates the SQLite file if missing and switches it to WAL (a property of the file, so it
/// holds for the pool's connections too). Returns the URL for the `Any` pool.
async fn prepare_sqlite(uri: &str) -> Result<String, StorageError> {
    let file = crate::config::sqlite_file(uri);
    if let Some(dir) = Path::new(file).parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(StorageError::MissingDirectory(dir.display().to_string()));
    }
    let options = SqliteConnectOptions::from_str(uri)
        .map_err(|error| StorageError::Config(error.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let connection = options.connect().await.map_err(StorageError::Connect)?;
    connection.close().await.map_err(StorageError::Connect)?;
    Ok(options.to_url_lossy().to_string())
}
