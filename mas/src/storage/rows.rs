//! Shared decoding of stored values into model types, the mapping of named unique
//! constraints onto [`StorageError`] variants, and the one-line time stamp every table's
//! revoke, consume, finish and first-use update runs.

use std::str::FromStr;

use sqlx::AnyConnection;
use ulid::Ulid;
use url::Url;

use super::StorageError;

/// A ULID column.
pub(super) fn ulid(column: &'static str, text: &str) -> Result<Ulid, StorageError> {
    parse(column, text)
}

/// A nullable ULID column.
pub(super) fn opt_ulid(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<Ulid>, StorageError> {
    text.map(|text| ulid(column, text)).transpose()
}

/// A column holding a keyword enum, a URL or anything else with `FromStr`.
pub(super) fn parse<T>(column: &'static str, text: &str) -> Result<T, StorageError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|error: T::Err| StorageError::InvalidData {
            column,
            reason: error.to_string(),
        })
}

/// A nullable column with `FromStr`.
pub(super) fn opt_parse<T>(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<T>, StorageError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.map(|text| parse(column, text)).transpose()
}

/// A nullable URL column.
pub(super) fn opt_url(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<Url>, StorageError> {
    opt_parse(column, text)
}

/// A JSON text column.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    text: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|error| StorageError::InvalidData {
        column,
        reason: error.to_string(),
    })
}

/// A value for a JSON text column.
pub(super) fn to_json<T: serde::Serialize + ?Sized>(
    column: &'static str,
    value: &T,
) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|error| StorageError::InvalidData {
        column,
        reason: error.to_string(),
    })
}

/// An integer column that must fit a narrower type.
pub(super) fn narrow<T: TryFrom<i64>>(column: &'static str, value: i64) -> Result<T, StorageError> {
    T::try_from(value).map_err(|_| StorageError::InvalidData {
        column,
        reason: format!("{value} is out of range"),
    })
}

/// A duration in milliseconds, saturating.
pub(super) fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A named unique constraint as each backend reports it: PostgreSQL gives the constraint's
/// name, SQLite only a message `UNIQUE constraint failed: table.col[, table.col]`.
pub(super) struct Unique {
    /// The constraint's name in the migration.
    pub(super) name: &'static str,
    /// SQLite's list of its columns.
    pub(super) sqlite_columns: &'static str,
}

impl Unique {
    /// Whether `error` is a violation of this constraint.
    pub(super) fn violated_by(&self, error: &sqlx::Error) -> bool {
        let Some(error) = error.as_database_error() else {
            return false;
        };
        if !error.is_unique_violation() {
            return false;
        }
        match error.constraint() {
            Some(name) => name == self.name,
            None => error
                .message()
                .strip_prefix("UNIQUE constraint failed: ")
                .is_some_and(|columns| columns == self.sqlite_columns),
        }
    }
}

/// Maps a query error: a violation of `unique` becomes `variant`, anything else
/// [`StorageError::Query`].
pub(super) fn map_unique(
    error: sqlx::Error,
    unique: &Unique,
    variant: StorageError,
) -> StorageError {
    if unique.violated_by(&error) {
        variant
    } else {
        StorageError::Query(error)
    }
}

/// Runs `sql`, an `UPDATE` that writes the time `at` (bound as `$2`) on the rows matched by
/// `id` (bound as `$1`), and returns how many rows changed. The SQL text stays with each
/// caller, one portable statement per query; only the binding and counting are shared.
pub(super) async fn stamp(
    conn: &mut AnyConnection,
    sql: &'static str,
    id: Ulid,
    at: i64,
) -> Result<u64, StorageError> {
    let result = sqlx::query(sql)
        .bind(id.to_string())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}
