//! The hot path: introspection runs on every Synapse request, so a token, its session and
//! the session's user come back from one query that walks only unique indexes
//! (`*_sha256` → token row → `oauth2_sessions` primary key → `users` primary key). Whether
//! the result is active (revoked, expired, finished, locked) is the endpoint's decision.
//!
//! The client is not joined: introspection only reports `client_id`, which is the session's
//! `client_id`, and decoding a whole client row (JSON lists) on every request would be waste.

use sqlx::AnyConnection;

use super::StorageError;
use super::access_tokens::AccessTokenRow;
use super::oauth2_sessions::SessionRow;
use super::refresh_tokens::RefreshTokenRow;
use crate::model::{AccessToken, RefreshToken, Session, User};

/// A token with its session and the session's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspected<T> {
    /// The token.
    pub token: T,
    /// Its session (the client is `session.client_id`).
    pub session: Session,
    /// The session's user; `None` for client_credentials sessions.
    pub user: Option<User>,
}

/// The session's user columns, all NULL when the session has no user (LEFT JOIN).
#[derive(sqlx::FromRow)]
struct JoinedUserRow {
    username: Option<String>,
    user_created_at: Option<i64>,
    locked_at: Option<i64>,
    deactivated_at: Option<i64>,
    can_request_admin: Option<i64>,
    is_guest: Option<i64>,
}

/// The session and user columns, with the names [`SessionRow`] and [`JoinedUserRow`] read.
macro_rules! session_and_user_columns {
    () => {
        "s.oauth2_client_id, s.user_id, s.user_session_id, s.scope, \
         s.created_at AS session_created_at, s.finished_at, s.user_agent, s.last_active_at, \
         s.last_active_ip, s.human_name, \
         u.username, u.created_at AS user_created_at, u.locked_at, u.deactivated_at, \
         CAST(u.can_request_admin AS INTEGER) AS can_request_admin, \
         CAST(u.is_guest AS INTEGER) AS is_guest"
    };
}

#[derive(sqlx::FromRow)]
struct AccessTokenJoinRow {
    #[sqlx(flatten)]
    token: AccessTokenRow,
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

#[derive(sqlx::FromRow)]
struct RefreshTokenJoinRow {
    #[sqlx(flatten)]
    token: RefreshTokenRow,
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// Builds the user from the joined columns and the session's `user_id`.
fn joined_user(session: &Session, row: JoinedUserRow) -> Result<Option<User>, StorageError> {
    let Some(id) = session.user_id else {
        return Ok(None);
    };
    let missing = || StorageError::InvalidData {
        column: "oauth2_sessions.user_id",
        reason: "the session's user is missing".to_owned(),
    };
    Ok(Some(User {
        id,
        username: row.username.ok_or_else(missing)?,
        created_at: row.user_created_at.ok_or_else(missing)?,
        locked_at: row.locked_at,
        deactivated_at: row.deactivated_at,
        can_request_admin: row.can_request_admin.ok_or_else(missing)? != 0,
        is_guest: row.is_guest.ok_or_else(missing)? != 0,
    }))
}

/// The access token whose text hashes to `token_sha256`, with its session and user, in one
/// query. Revoked, expired and finished rows are returned as they are.
#[tracing::instrument(
    name = "db.oauth2_access_tokens.lookup_for_introspection",
    skip_all,
    err
)]
pub async fn lookup_access_token_for_introspection(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<Introspected<AccessToken>>, StorageError> {
    let row: Option<AccessTokenJoinRow> = sqlx::query_as(concat!(
        "SELECT t.oauth2_access_token_id, t.oauth2_session_id, \
                t.created_at AS token_created_at, t.expires_at, t.revoked_at, \
                t.first_used_at, ",
        session_and_user_columns!(),
        " FROM oauth2_access_tokens t \
          JOIN oauth2_sessions s ON s.oauth2_session_id = t.oauth2_session_id \
          LEFT JOIN users u ON u.user_id = s.user_id \
          WHERE t.access_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let session = Session::try_from(row.session)?;
    let user = joined_user(&session, row.user)?;
    Ok(Some(Introspected {
        token: AccessToken::try_from(row.token)?,
        session,
        user,
    }))
}

/// The refresh token whose text hashes to `token_sha256`, with its session and user, in one
/// query. Consumed, revoked and finished rows are returned as they are.
#[tracing::instrument(
    name = "db.oauth2_refresh_tokens.lookup_for_introspection",
    skip_all,
    err
)]
pub async fn lookup_refresh_token_for_introspection(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<Introspected<RefreshToken>>, StorageError> {
    let row: Option<RefreshTokenJoinRow> = sqlx::query_as(concat!(
        "SELECT t.oauth2_refresh_token_id, t.oauth2_session_id, t.oauth2_access_token_id, \
                t.created_at AS token_created_at, t.consumed_at, t.revoked_at, \
                t.next_oauth2_refresh_token_id, ",
        session_and_user_columns!(),
        " FROM oauth2_refresh_tokens t \
          JOIN oauth2_sessions s ON s.oauth2_session_id = t.oauth2_session_id \
          LEFT JOIN users u ON u.user_id = s.user_id \
          WHERE t.refresh_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let session = Session::try_from(row.session)?;
    let user = joined_user(&session, row.user)?;
    Ok(Some(Introspected {
        token: RefreshToken::try_from(row.token)?,
        session,
        user,
    }))
}

#[cfg(test)]
mod tests;
