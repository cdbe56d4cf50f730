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

/// Migrations whose comments were reworded after they shipped, no statement changed: the
/// SHA-384 each had before, which an existing database still records. The check accepts it and
/// [`migrate`] records the current checksum in its place, so the rewording costs no one a
/// refused start. Never add a migration whose statements changed here.
const REWORDED: &[(i64, &str)] = &[
    (
        1,
        "ffa4ca1913e43fa6a3f666358facd0e4ae50a7643f9b522141fe76d88012d91bc4f2ced6a2646b8c80a09cf483836950",
    ),
    (
        11,
        "5da9a8d1e02c8ad0477508d71746c382ff3627c75432fb90f863b7c7c6fb9c626ae75d42698acb7d458de02232cedacf",
    ),
    (
        12,
        "420fe9276779362f1c7c54bf25987ed508547d839bbd3a5cd3c15dcedec8a02aeb2e5b270d3f54cbd38217e43466de26",
    ),
];

/// Whether `checksum` is what migration `version` had before its comments were reworded.
fn was_reworded(version: i64, checksum: &[u8]) -> bool {
    REWORDED
        .iter()
        .any(|(v, old)| *v == version && hex::encode(checksum) == *old)
}

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

/// The migrations not yet applied, oldest first. Fails if an applied migration was edited
/// (beyond the rewordings of [`REWORDED`]), is unknown to this binary, or failed halfway.
/// Changes nothing.
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
    let Checked { pending, reworded } = check(db, migrator).await?;
    if !reworded.is_empty() {
        restamp(db, migrator, &reworded).await?;
    }
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
    Ok(check(db, migrator).await?.pending)
}

/// What [`check`] found: the migrations to apply, and the applied ones that still record the
/// checksum they had before their comments were reworded ([`REWORDED`]).
struct Checked {
    pending: Vec<MigrationInfo>,
    reworded: Vec<i64>,
}

async fn check(db: &Database, migrator: &Migrator) -> Result<Checked, StorageError> {
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
    let mut reworded = Vec::new();
    for applied in &applied {
        match known.get(&applied.version) {
            None => return Err(StorageError::UnknownMigration(applied.version)),
            Some(migration) if migration.checksum == applied.checksum => {}
            Some(migration) if was_reworded(migration.version, &applied.checksum) => {
                reworded.push(migration.version);
            }
            Some(migration) => {
                return Err(StorageError::MigrationChanged {
                    version: migration.version,
                    description: migration.description.to_string(),
                });
            }
        }
    }
    let mut pending: Vec<MigrationInfo> = known
        .values()
        .filter(|migration| !applied.iter().any(|a| a.version == migration.version))
        .map(|migration| MigrationInfo::from(*migration))
        .collect();
    pending.sort_by_key(|migration| migration.version);
    Ok(Checked { pending, reworded })
}

/// Records the current checksum of the reworded migrations `versions`, in one transaction.
async fn restamp(db: &Database, migrator: &Migrator, versions: &[i64]) -> Result<(), StorageError> {
    let mut tx = db.pool().begin().await?;
    for migration in migrator.iter().filter(|m| versions.contains(&m.version)) {
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2")
            .bind(migration.checksum.to_vec())
            .bind(migration.version)
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            migration.version = migration.version,
            "recorded the checksum of a migration whose comments were reworded"
        );
    }
    tx.commit().await?;
    Ok(())
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
