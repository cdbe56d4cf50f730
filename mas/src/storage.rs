//! Storage: one sqlx `Any` pool over PostgreSQL or SQLite, and the embedded migrations.
//! Queries are portable SQL, one text for both backends (see DESIGN.md); the table-specific
//! functions come in files of their own under `storage/`. This module owns connecting and
//! migrating, not the queries' meaning.
//!
//! **Booleans.** Columns are declared `BOOLEAN` and written by binding a Rust `bool` (SQLite
//! stores 0/1). But sqlx 0.8's `Any` driver cannot *read* a SQLite column declared `BOOLEAN`
//! (it fails with "Any driver does not support the SQLite type SqliteTypeInfo(Bool)", sqlx
//! issue 2778), so select them as `CAST(col AS INTEGER) AS col` (an `int4` on PostgreSQL, an
//! integer on SQLite), decode an `i64` and convert with `!= 0`. Filtering on them
//! (`WHERE is_guest = $1`, `WHERE NOT is_guest`) works on both as is.

mod connect;
mod migrate;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use sqlx::AnyPool;

use crate::config::{DatabaseBackend, DatabaseConfig};

pub use self::migrate::{MIGRATOR, MigrationInfo, ensure_up_to_date, migrate, pending_migrations};

/// A handle on the database: a cheap-to-clone pool plus what the backend needs to know.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: DatabaseBackend,
    schema: Option<Arc<str>>,
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The `database` section cannot be used.
    #[error("database.uri: {0}")]
    Config(String),
    /// The directory of the SQLite file is missing (it is not created, to catch typos).
    #[error("the directory of the SQLite database, {0}, does not exist")]
    MissingDirectory(String),
    /// Connecting failed.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A query failed.
    #[error("database error")]
    Query(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrating the database failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `server` found migrations that have not been applied.
    #[error("database has {0} pending migrations; run `mas-cli database migrate`")]
    Pending(usize),
    /// An applied migration no longer matches the embedded one.
    #[error(
        "migration {version} ({description}) was changed after it was applied (checksum mismatch)"
    )]
    MigrationChanged {
        /// Its version.
        version: i64,
        /// Its description.
        description: String,
    },
    /// The database has a migration this binary does not know (it is older than the data).
    #[error("the database has migration {0}, which this mas-cli does not know; is it outdated?")]
    UnknownMigration(i64),
    /// A migration failed halfway and left its mark.
    #[error("migration {0} failed partway; the database needs repair by hand")]
    DirtyMigration(i64),
}

impl Database {
    /// Opens a pool as the configuration says. SQLite: creates the file if missing and
    /// switches it to WAL. PostgreSQL with a `schema`: every connection's `search_path` is set
    /// to it (the schema itself is created by [`migrate()`]).
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StorageError> {
        let (backend, _) = config.backend().map_err(StorageError::Config)?;
        let pool = connect::pool(config, backend).await?;
        tracing::info!(backend = ?backend, "database pool ready");
        Ok(Self {
            pool,
            backend,
            schema: config.schema.as_deref().map(Arc::from),
        })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// The PostgreSQL schema MAS lives in, when configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Runs `SELECT 1`: is the database answering?
    #[tracing::instrument(name = "db.ping", skip_all, err)]
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later queries fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Quotes a PostgreSQL identifier (`my"schema` → `"my""schema"`), so a configured schema name
/// can never inject SQL.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_identifier("mas"), "\"mas\"");
        assert_eq!(quote_identifier("a\"; DROP"), "\"a\"\"; DROP\"");
    }
}
