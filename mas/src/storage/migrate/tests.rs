//! Migration tests: each storage test is written once and runs on SQLite and PostgreSQL.

use sqlx::Row as _;

use super::*;
use crate::config::DatabaseConfig;
use crate::storage::testing::{
    on_postgres, on_postgres_with_schema, on_sqlite, test_on_both_backends,
};

const FIRST: &str = include_str!("../../../migrations/0001_create_users.sql");

/// A migrator over the given `(file name, SQL)` pairs.
async fn migrator_from(files: &[(&str, &str)]) -> (Migrator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let migrator = Migrator::new(dir.path()).await.unwrap();
    (migrator, dir)
}

fn embedded_count() -> usize {
    MIGRATOR.iter().count()
}

async fn fresh_database_has_every_migration_pending(db: Database) {
    let pending = pending_migrations(&db).await.unwrap();
    assert_eq!(pending.len(), embedded_count());
    let first = MigrationInfo {
        version: 1,
        description: "create users".to_owned(),
    };
    assert_eq!(pending.first(), Some(&first));
    let refused = ensure_up_to_date(&db).await.unwrap_err();
    assert!(matches!(refused, StorageError::Pending(n) if n == embedded_count()));
    assert_eq!(
        refused.to_string(),
        format!(
            "database has {} pending migrations; run `mas-cli database migrate`",
            embedded_count()
        )
    );
}

async fn migrate_applies_everything_and_is_idempotent(db: Database) {
    assert_eq!(migrate(&db).await.unwrap().len(), embedded_count());
    assert_eq!(pending_migrations(&db).await.unwrap(), []);
    ensure_up_to_date(&db).await.unwrap();
    assert_eq!(migrate(&db).await.unwrap(), []);
}

async fn users_table_round_trips_portable_types(db: Database) {
    migrate(&db).await.unwrap();
    let insert = "INSERT INTO users (user_id, username, created_at, is_guest) \
                  VALUES ($1, $2, $3, $4)";
    sqlx::query(insert)
        .bind("01HQZX3Y4Z5A6B7C8D9E0F1G2H")
        .bind("alice")
        .bind(1_704_067_200_000_i64)
        .bind(true)
        .execute(db.pool())
        .await
        .unwrap();
    // Booleans are read through CAST: see "Booleans" in the storage module docs.
    let row = sqlx::query(
        "SELECT username, created_at, locked_at, \
                CAST(can_request_admin AS INTEGER), CAST(is_guest AS INTEGER) \
         FROM users WHERE user_id = $1",
    )
    .bind("01HQZX3Y4Z5A6B7C8D9E0F1G2H")
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "alice");
    assert_eq!(row.get::<i64, _>(1), 1_704_067_200_000);
    assert_eq!(row.get::<Option<i64>, _>(2), None);
    assert_eq!(row.get::<i64, _>(3), 0);
    assert_eq!(row.get::<i64, _>(4), 1);

    let duplicate = sqlx::query(insert)
        .bind("01HQZX3Y4Z5A6B7C8D9E0F1G2J")
        .bind("alice")
        .bind(0_i64)
        .bind(false)
        .execute(db.pool())
        .await
        .unwrap_err();
    let is_unique = duplicate
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation());
    assert!(is_unique, "{duplicate}");
}

async fn edited_migration_is_detected(db: Database) {
    migrate(&db).await.unwrap();
    let edited_sql = FIRST.replace("is_guest", "is_visitor");
    let (edited, _dir) = migrator_from(&[("0001_create_users.sql", &edited_sql)]).await;
    let error = pending(&db, &edited).await.unwrap_err();
    assert!(
        matches!(error, StorageError::MigrationChanged { version: 1, .. }),
        "{error}"
    );
    assert!(run(&db, &edited).await.is_err());
}

async fn migration_unknown_to_the_binary_is_refused(db: Database) {
    migrate(&db).await.unwrap();
    let (older, _dir) = migrator_from(&[]).await;
    let error = pending(&db, &older).await.unwrap_err();
    assert!(
        matches!(error, StorageError::UnknownMigration(1)),
        "{error}"
    );
}

/// Every embedded migration as `(file name, SQL)`, as read from `mas/migrations`.
fn embedded_files() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), embedded_count());
    files
}

async fn new_migration_is_pending_then_applied(db: Database) {
    migrate(&db).await.unwrap();
    let mut files = embedded_files();
    files.push((
        "9999_create_things.sql".to_owned(),
        "CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY);".to_owned(),
    ));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, sql)| (name.as_str(), sql.as_str()))
        .collect();
    let (newer, _dir) = migrator_from(&borrowed).await;
    let versions = |list: Vec<MigrationInfo>| list.iter().map(|m| m.version).collect::<Vec<_>>();
    assert_eq!(versions(pending(&db, &newer).await.unwrap()), [9999]);
    assert_eq!(versions(run(&db, &newer).await.unwrap()), [9999]);
    assert_eq!(pending(&db, &newer).await.unwrap(), []);
}

/// The checksum `_sqlx_migrations` records for `version`.
async fn recorded_checksum(db: &Database, version: i64) -> Vec<u8> {
    sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = $1")
        .bind(version)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn set_recorded_checksum(db: &Database, version: i64, checksum: Vec<u8>) {
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2")
        .bind(checksum)
        .bind(version)
        .execute(db.pool())
        .await
        .unwrap();
}

/// A database migrated before a migration's comments were reworded still records the old
/// checksum: it is accepted, and `migrate` records the current one. Any other checksum is
/// still an edited migration.
async fn a_reworded_migration_is_accepted_then_restamped(db: Database) {
    migrate(&db).await.unwrap();
    let (version, old) = REWORDED[1];
    let current = MIGRATOR
        .iter()
        .find(|m| m.version == version)
        .unwrap()
        .checksum
        .to_vec();
    set_recorded_checksum(&db, version, hex::decode(old).unwrap()).await;
    assert!(pending_migrations(&db).await.unwrap().is_empty());
    ensure_up_to_date(&db).await.unwrap();
    assert_eq!(migrate(&db).await.unwrap(), []);
    assert_eq!(recorded_checksum(&db, version).await, current);

    set_recorded_checksum(&db, version, vec![7; 48]).await;
    let error = pending_migrations(&db).await.unwrap_err();
    assert!(
        matches!(error, StorageError::MigrationChanged { version: v, .. } if v == version),
        "{error}"
    );
    assert!(migrate(&db).await.is_err());
}

#[test]
fn reworded_checksums_are_not_the_current_ones() {
    for (version, old) in REWORDED {
        let migration = MIGRATOR.iter().find(|m| m.version == *version).unwrap();
        assert_ne!(hex::encode(&*migration.checksum), *old, "{version}");
    }
}

test_on_both_backends!(
    a_reworded_migration_is_accepted_then_restamped,
    fresh_database_has_every_migration_pending,
    migrate_applies_everything_and_is_idempotent,
    users_table_round_trips_portable_types,
    edited_migration_is_detected,
    migration_unknown_to_the_binary_is_refused,
    new_migration_is_pending_then_applied,
);

/// Schemas holding `table`, as PostgreSQL's catalog says.
async fn schemas_of(db: &Database, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CAST(table_schema AS TEXT) FROM information_schema.tables \
         WHERE table_name = $1 \
         ORDER BY table_schema",
    )
    .bind(table)
    .fetch_all(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_tables_live_in_the_configured_schema() {
    on_postgres(|db| async move {
        migrate(&db).await.unwrap();
        assert_eq!(schemas_of(&db, "users").await, ["mas"]);
        assert_eq!(schemas_of(&db, "_sqlx_migrations").await, ["mas"]);
    })
    .await;
}

#[tokio::test]
async fn postgres_pending_check_creates_nothing() {
    on_postgres(|db| async move {
        assert_eq!(
            pending_migrations(&db).await.unwrap().len(),
            embedded_count()
        );
        let schemas: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'mas'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(schemas, 0);
    })
    .await;
}

#[tokio::test]
async fn postgres_schema_name_is_quoted() {
    on_postgres_with_schema(Some("odd\"Name"), |db| async move {
        migrate(&db).await.unwrap();
        assert_eq!(schemas_of(&db, "users").await, ["odd\"Name"]);
    })
    .await;
}

#[tokio::test]
async fn postgres_without_schema_uses_public() {
    on_postgres_with_schema(None, |db| async move {
        migrate(&db).await.unwrap();
        assert_eq!(schemas_of(&db, "users").await, ["public"]);
    })
    .await;
}

#[tokio::test]
async fn sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout() {
    on_sqlite(|db| async move {
        let mut connection = db.pool().acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
    })
    .await;
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_a_clear_error() {
    let config = DatabaseConfig {
        uri: Some("sqlite:///nonexistent-dir/mas.db".to_owned()),
        ..DatabaseConfig::default()
    };
    let error = Database::connect(&config).await.unwrap_err();
    assert!(
        matches!(error, StorageError::MissingDirectory(_)),
        "{error}"
    );
}
