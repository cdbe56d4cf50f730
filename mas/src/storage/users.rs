//! `users`: local accounts (migration 0001).

use rand::RngCore;
use sqlx::AnyConnection;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::User;
use crate::rng::new_ulid;

const USERNAME_UNIQUE: Unique = Unique {
    name: "users_username_unique",
    sqlite_columns: "users.username",
};

/// The select list that [`UserRow`] decodes (booleans through `CAST`, see the module docs of
/// `storage`).
macro_rules! user_columns {
    () => {
        "user_id, username, created_at, locked_at, deactivated_at, \
         CAST(can_request_admin AS INTEGER) AS can_request_admin, \
         CAST(is_guest AS INTEGER) AS is_guest"
    };
}

/// A `users` row.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    user_id: String,
    username: String,
    created_at: i64,
    locked_at: Option<i64>,
    deactivated_at: Option<i64>,
    can_request_admin: i64,
    is_guest: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("users.user_id", &row.user_id)?,
            username: row.username,
            created_at: row.created_at,
            locked_at: row.locked_at,
            deactivated_at: row.deactivated_at,
            can_request_admin: row.can_request_admin != 0,
            is_guest: row.is_guest != 0,
        })
    }
}

/// Creates a user (not locked, not admin, not a guest). Fails with
/// [`StorageError::UsernameTaken`] if the username exists.
#[tracing::instrument(name = "db.users.add", skip_all, fields(user.username = username), err)]
pub async fn add_user(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    username: &str,
) -> Result<User, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    sqlx::query("INSERT INTO users (user_id, username, created_at) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(username)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|error| map_unique(error, &USERNAME_UNIQUE, StorageError::UsernameTaken))?;
    Ok(User {
        id,
        username: username.to_owned(),
        created_at: now,
        locked_at: None,
        deactivated_at: None,
        can_request_admin: false,
        is_guest: false,
    })
}

/// The user with this id.
#[tracing::instrument(name = "db.users.find", skip_all, fields(user.id = %id), err)]
pub async fn find_user(
    conn: &mut AnyConnection,
    id: ulid::Ulid,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE user_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// The user with this username (exact match).
#[tracing::instrument(
    name = "db.users.find_by_username",
    skip_all,
    fields(user.username = username),
    err
)]
pub async fn find_user_by_username(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// Locks the user (keeping the first lock time if already locked). `None` if no such user.
#[tracing::instrument(name = "db.users.lock", skip_all, fields(user.id = %id), err)]
pub async fn lock_user(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: ulid::Ulid,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "UPDATE users SET locked_at = COALESCE(locked_at, $2) WHERE user_id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// Unlocks the user. `None` if no such user.
#[tracing::instrument(name = "db.users.unlock", skip_all, fields(user.id = %id), err)]
pub async fn unlock_user(
    conn: &mut AnyConnection,
    id: ulid::Ulid,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "UPDATE users SET locked_at = NULL WHERE user_id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// Marks the user deactivated (keeping the first time). Ending its sessions and deleting it
/// in Synapse is the `deactivate-user` job's work. `None` if no such user.
#[tracing::instrument(name = "db.users.deactivate", skip_all, fields(user.id = %id), err)]
pub async fn deactivate_user(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: ulid::Ulid,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $2) WHERE user_id = $1 \
         RETURNING ",
        user_columns!()
    ))
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// Clears the deactivation. `None` if no such user.
#[tracing::instrument(name = "db.users.reactivate", skip_all, fields(user.id = %id), err)]
pub async fn reactivate_user(
    conn: &mut AnyConnection,
    id: ulid::Ulid,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "UPDATE users SET deactivated_at = NULL WHERE user_id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

/// Sets whether the user may be granted `urn:synapse:admin:*`. `None` if no such user.
#[tracing::instrument(
    name = "db.users.set_can_request_admin",
    skip_all,
    fields(user.id = %id, can_request_admin),
    err
)]
pub async fn set_can_request_admin(
    conn: &mut AnyConnection,
    id: ulid::Ulid,
    can_request_admin: bool,
) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "UPDATE users SET can_request_admin = $2 WHERE user_id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.to_string())
    .bind(can_request_admin)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(User::try_from).transpose()
}

#[cfg(test)]
mod tests;
