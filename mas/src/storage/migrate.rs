//! The embedded, forward-only migrations (`mas/migrations/NNNN_verb_object.sql`), applied by
//! sqlx's migrator through the `Any` driver, which hands each step to the native backend (its
//! `_sqlx_migrations` table, SHA-384 checksums and, on PostgreSQL, an advisory lock).
//! On top of it: a read-only "what is pending" check, so `server` can refuse to start
//! without creating anything.

use std::collections::HashMap;

use sqlx::migrate::{Migrate as _, Migration, Migrator};

use super::{Database, StorageError, quote_identifier};
use crate::config::DatabaseBackend;

/// Every migration, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One migration, as reported to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// The `NNNN` of the file name.
    pub version: i64,
    /// The rest of the file name (`create users`).
    pub description: String,
}

impl From<&Migration> for MigrationInfo {
    fn from(migration: &Migration) -> Self {
        Self {
            version: migration.version,
            description: migration.description.to_string(),
        }
    }
}

/// Applies every pending migration (creating the PostgreSQL schema first, when one is
/// configured) and returns those it applied. Idempotent.
pub async fn migrate(db: &Database) -> Result<Vec<MigrationInfo>, StorageError> {
    run(db, &MIGRATOR).await
}

/// The migrations not yet applied, oldest first. Fails if an applied migration was edited,
/// is unknown to this binary, or failed halfway. Changes nothing.
pub async fn pending_migrations(db: &Database) -> Result<Vec<MigrationInfo>, StorageError> {
    pending(db, &MIGRATOR).await
}

/// Succeeds only when nothing is pending: what `server` checks before it starts.
pub async fn ensure_up_to_date(db: &Database) -> Result<(), StorageError> {
    match pending_migrations(db).await?.len() {
        0 => Ok(()),
        count => Err(StorageError::Pending(count)),
    }
}

pub(super) async fn run(
    db: &Database,
    migrator: &Migrator,
) -> Result<Vec<MigrationInfo>, StorageError> {
    if let (DatabaseBackend::Postgres, Some(schema)) = (db.backend(), db.schema()) {
        let statement = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_identifier(schema));
        sqlx::raw_sql(&statement).execute(db.pool()).await?;
    }
    // Checked first so an edited or unknown migration is reported in our words.
    let pending = pending(db, migrator).await?;
    migrator.run(db.pool()).await?;
    for migration in &pending {
        tracing::info!(
            migration.version = migration.version,
            migration.description = %migration.description,
            "applied migration"
        );
    }
    Ok(pending)
}

pub(super) async fn pending(
    db: &Database,
    migrator: &Migrator,
) -> Result<Vec<MigrationInfo>, StorageError> {
    let mut connection = db.pool().acquire().await?;
    let applied = if migrations_table_exists(&mut connection, db.backend()).await? {
        if let Some(version) = connection.dirty_version().await? {
            return Err(StorageError::DirtyMigration(version));
        }
        connection.list_applied_migrations().await?
    } else {
        Vec::new()
    };
    let known: HashMap<i64, &Migration> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| (migration.version, migration))
        .collect();
    for applied in &applied {
        match known.get(&applied.version) {
            None => return Err(StorageError::UnknownMigration(applied.version)),
            Some(migration) if migration.checksum != applied.checksum => {
                return Err(StorageError::MigrationChanged {
                    version: migration.version,
                    description: migration.description.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    let mut pending: Vec<MigrationInfo> = known
        .values()
        .filter(|migration| !applied.iter().any(|a| a.version == migration.version))
        .map(|migration| MigrationInfo::from(*migration))
        .collect();
    pending.sort_by_key(|migration| migration.version);
    Ok(pending)
}

/// Whether sqlx's bookkeeping table exists yet. The catalogs differ, so this is the one query
/// written twice. On PostgreSQL `current_schema()` is the first schema of the `search_path`
/// that exists (NULL when the configured one does not yet).
async fn migrations_table_exists(
    connection: &mut sqlx::AnyConnection,
    backend: DatabaseBackend,
) -> Result<bool, StorageError> {
    let sql = match backend {
        DatabaseBackend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        DatabaseBackend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let count: i64 = sqlx::query_scalar(sql).fetch_one(connection).await?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests;
