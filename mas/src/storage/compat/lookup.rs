//! Compat tokens found with their session and user in one join (introspection, logout,
//! refresh): the hot path of every request Synapse makes with a compat access token.

use sqlx::AnyConnection;

use super::sessions::SessionRow;
use crate::model::{CompatAccessToken, CompatRefreshToken, CompatSession, User};
use crate::storage::StorageError;
use crate::storage::rows;

/// A compat token with its session and the session's user (introspection, logout, refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatLookup<T> {
    /// The token.
    pub token: T,
    /// Its session.
    pub session: CompatSession,
    /// The session's user.
    pub user: User,
}

/// The session and user columns of the lookups, named as [`JoinedSessionRow`] reads them.
macro_rules! session_and_user_columns {
    () => {
        "s.compat_session_id, s.user_id, s.device_id, s.user_session_id, \
         CAST(s.is_synapse_admin AS INTEGER) AS is_synapse_admin, \
         s.created_at AS session_created_at, s.finished_at, s.user_agent, s.human_name, \
         u.username, u.created_at AS user_created_at, u.locked_at, u.deactivated_at, \
         CAST(u.can_request_admin AS INTEGER) AS can_request_admin, \
         CAST(u.is_guest AS INTEGER) AS is_guest"
    };
}

#[derive(sqlx::FromRow)]
struct JoinedSessionRow {
    compat_session_id: String,
    user_id: String,
    device_id: String,
    user_session_id: Option<String>,
    is_synapse_admin: i64,
    session_created_at: i64,
    finished_at: Option<i64>,
    user_agent: Option<String>,
    human_name: Option<String>,
    username: String,
    user_created_at: i64,
    locked_at: Option<i64>,
    deactivated_at: Option<i64>,
    can_request_admin: i64,
    is_guest: i64,
}

impl JoinedSessionRow {
    fn split(self) -> Result<(CompatSession, User), StorageError> {
        let session = CompatSession::try_from(SessionRow {
            compat_session_id: self.compat_session_id,
            user_id: self.user_id,
            device_id: self.device_id,
            user_session_id: self.user_session_id,
            is_synapse_admin: self.is_synapse_admin,
            created_at: self.session_created_at,
            finished_at: self.finished_at,
            user_agent: self.user_agent,
            human_name: self.human_name,
        })?;
        let user = User {
            id: session.user_id,
            username: self.username,
            created_at: self.user_created_at,
            locked_at: self.locked_at,
            deactivated_at: self.deactivated_at,
            can_request_admin: self.can_request_admin != 0,
            is_guest: self.is_guest != 0,
        };
        Ok((session, user))
    }
}

#[derive(sqlx::FromRow)]
struct AccessTokenJoinRow {
    compat_access_token_id: String,
    token_created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    first_used_at: Option<i64>,
    #[sqlx(flatten)]
    rest: JoinedSessionRow,
}

/// The compat access token whose text hashes to `token_sha256`, with its session and user,
/// in one query over unique indexes (introspection's hot path). Revoked, expired and
/// finished rows are returned as they are.
#[tracing::instrument(name = "db.compat_access_tokens.lookup", skip_all, err)]
pub async fn lookup_compat_access_token(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<CompatLookup<CompatAccessToken>>, StorageError> {
    let row: Option<AccessTokenJoinRow> = sqlx::query_as(concat!(
        "SELECT t.compat_access_token_id, t.created_at AS token_created_at, t.expires_at, \
                t.revoked_at, t.first_used_at, ",
        session_and_user_columns!(),
        " FROM compat_access_tokens t \
          JOIN compat_sessions s ON s.compat_session_id = t.compat_session_id \
          JOIN users u ON u.user_id = s.user_id \
          WHERE t.access_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (session, user) = row.rest.split()?;
    let token = CompatAccessToken {
        id: rows::ulid(
            "compat_access_tokens.compat_access_token_id",
            &row.compat_access_token_id,
        )?,
        session_id: session.id,
        created_at: row.token_created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        first_used_at: row.first_used_at,
    };
    Ok(Some(CompatLookup {
        token,
        session,
        user,
    }))
}

#[derive(sqlx::FromRow)]
struct RefreshTokenJoinRow {
    compat_refresh_token_id: String,
    compat_access_token_id: String,
    token_created_at: i64,
    consumed_at: Option<i64>,
    revoked_at: Option<i64>,
    #[sqlx(flatten)]
    rest: JoinedSessionRow,
}

/// The compat refresh token whose text hashes to `token_sha256`, with its session and user,
/// in one query. Consumed, revoked and finished rows are returned as they are.
#[tracing::instrument(name = "db.compat_refresh_tokens.lookup", skip_all, err)]
pub async fn lookup_compat_refresh_token(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<CompatLookup<CompatRefreshToken>>, StorageError> {
    let row: Option<RefreshTokenJoinRow> = sqlx::query_as(concat!(
        "SELECT t.compat_refresh_token_id, t.compat_access_token_id, \
                t.created_at AS token_created_at, t.consumed_at, t.revoked_at, ",
        session_and_user_columns!(),
        " FROM compat_refresh_tokens t \
          JOIN compat_sessions s ON s.compat_session_id = t.compat_session_id \
          JOIN users u ON u.user_id = s.user_id \
          WHERE t.refresh_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (session, user) = row.rest.split()?;
    let token = CompatRefreshToken {
        id: rows::ulid(
            "compat_refresh_tokens.compat_refresh_token_id",
            &row.compat_refresh_token_id,
        )?,
        session_id: session.id,
        access_token_id: rows::ulid(
            "compat_refresh_tokens.compat_access_token_id",
            &row.compat_access_token_id,
        )?,
        created_at: row.token_created_at,
        consumed_at: row.consumed_at,
        revoked_at: row.revoked_at,
    };
    Ok(Some(CompatLookup {
        token,
        session,
        user,
    }))
}
