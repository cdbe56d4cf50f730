//! Storage: one sqlx `Any` pool over PostgreSQL or SQLite, and the embedded migrations. Queries are
//! portable SQL, one text for both backends (docs/architecture.md#storage); the table-specific
//! functions come in files of their own under `storage/`. This module owns connecting and
//! migrating, not the queries' meaning.
//!
//! **Booleans.** Columns are declared `BOOLEAN` and written by binding a Rust `bool` (SQLite
//! stores 0/1). But sqlx 0.8's `Any` driver cannot *read* a SQLite column declared `BOOLEAN`
//! (it fails with "Any driver does not support the SQLite type SqliteTypeInfo(Bool)", sqlx
//! issue 2778), so select them as `CAST(col AS INTEGER) AS col` (an `int4` on PostgreSQL, an
//! integer on SQLite), decode an `i64` and convert with `!= 0`. Filtering on them
//! (`WHERE is_guest = $1`, `WHERE NOT is_guest`) works on both as is.
//!
//! **Queries.** Each table group has a module of plain `async fn`s taking `&mut AnyConnection`
//! (a pooled connection or a transaction: the caller commits), the injected
//! [`Clock`](crate::clock::Clock) and, when they create rows, the request's RNG for the ULID.
//! Conditional state changes (`… WHERE exchanged_at IS NULL`) report whether they won, so
//! concurrent requests cannot both succeed. Transactions that write start with
//! [`Database::begin_write`]. Named unique constraints are turned into precise
//! [`StorageError`] variants.

pub mod access_tokens;
pub mod browser_sessions;
pub mod clients;
pub mod compat;
pub mod compat_sso_logins;
mod connect;
pub mod device_grants;
pub mod email_authentications;
pub mod emails;
pub mod grants;
pub mod introspection;
pub mod jobs;
mod migrate;
pub mod oauth2_sessions;
pub mod passwords;
pub mod recovery;
pub mod refresh_tokens;
mod rows;
pub mod static_clients;
#[cfg(test)]
pub(crate) mod testing;
pub mod upstream_links;
pub mod upstream_sessions;
pub mod users;

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Transaction};

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
    /// A stored value cannot be read back (a bug, or a row edited by hand).
    #[error("invalid value in {column}: {reason}")]
    InvalidData {
        /// `table.column`.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `users_username_unique`: another user has this username.
    #[error("the username is already taken")]
    UsernameTaken,
    /// `user_emails_user_id_email_unique`: the user already has this address.
    #[error("the user already has this email address")]
    EmailAlreadyAdded,
    /// `oauth2_clients_metadata_digest_unique`: a client with the same metadata digest
    /// exists (fetch it with `clients::find_client_by_metadata_digest`).
    #[error("a client with identical metadata is already registered")]
    DuplicateClientMetadata,
    /// A token or code hash collided with a stored one (practically impossible with
    /// 30 random alphanumerics; generate a new one).
    #[error("a token with the same hash already exists")]
    TokenCollision,
    /// `upstream_oauth_links_provider_subject_unique`: the provider's subject is linked
    /// already (load that link with `upstream_links::find_upstream_link_by_subject`).
    #[error("this upstream account is already linked")]
    UpstreamLinkExists,
    /// A job was completed or failed that is not `running`.
    #[error("job {0} is not running")]
    JobNotRunning(ulid::Ulid),
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

    /// A pooled connection, for reads and single statements (writes that belong together
    /// use [`begin_write`](Self::begin_write)).
    pub async fn acquire(&self) -> Result<PoolConnection<Any>, StorageError> {
        Ok(self.pool.acquire().await?)
    }

    /// Which engine this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// The PostgreSQL schema MAS lives in, when configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Starts a transaction for a change, on a pooled connection. Use it for every
    /// transaction that writes. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a transaction that reads and then writes would otherwise fail with "database is
    /// locked" whenever another connection committed in between (a stale WAL snapshot cannot
    /// be upgraded), instead of waiting. On PostgreSQL it is a plain `BEGIN`. Commit
    /// explicitly; dropping it rolls back.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, StorageError> {
        let statement = match self.backend {
            DatabaseBackend::Sqlite => "BEGIN IMMEDIATE",
            DatabaseBackend::Postgres => "BEGIN",
        };
        Ok(self.pool.begin_with(statement).await?)
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
    use std::time::Duration;

    use super::*;
    use crate::clock::MockClock;
    use crate::rng::RngSource;
    use crate::storage::testing::test_on_both_backends;

    async fn read_then_write_transactions_wait_for_each_other(db: Database) {
        migrate(&db).await.unwrap();
        let clock = MockClock::default();
        let mut first = db.begin_write().await.unwrap();
        users::find_user_by_username(&mut first, "alice")
            .await
            .unwrap();

        // Reads, then writes, while `first` is open. With a plain BEGIN on SQLite its write
        // would fail ("database is locked") once `first` commits; here it waits instead.
        let (db2, clock2) = (db.clone(), clock.clone());
        let second = tokio::spawn(async move {
            let mut rng = RngSource::seeded(2).fork();
            let mut tx = db2.begin_write().await.unwrap();
            users::find_user_by_username(&mut tx, "bob").await.unwrap();
            users::add_user(&mut tx, &clock2, &mut rng, "bob")
                .await
                .unwrap();
            tx.commit().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut rng = RngSource::seeded(1).fork();
        users::add_user(&mut first, &clock, &mut rng, "alice")
            .await
            .unwrap();
        first.commit().await.unwrap();
        second.await.unwrap();

        let mut conn = db.pool().acquire().await.unwrap();
        for name in ["alice", "bob"] {
            assert!(
                users::find_user_by_username(&mut conn, name)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }

    test_on_both_backends!(read_then_write_transactions_wait_for_each_other);

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_identifier("mas"), "\"mas\"");
        assert_eq!(quote_identifier("a\"; DROP"), "\"a\"\"; DROP\"");
    }
}
