//! `compat_sessions`, `compat_access_tokens` and `compat_refresh_tokens` (migration 0010): the
//! legacy Matrix login API's sessions (one per device) and tokens, found by the lower-case hex
//! SHA-256 of their text.

use std::time::Duration;

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{CompatAccessToken, CompatRefreshToken, CompatSession, User};
use crate::rng::new_ulid;

const ACCESS_SHA256_UNIQUE: Unique = Unique {
    name: "compat_access_tokens_sha256_unique",
    sqlite_columns: "compat_access_tokens.access_token_sha256",
};

const REFRESH_SHA256_UNIQUE: Unique = Unique {
    name: "compat_refresh_tokens_sha256_unique",
    sqlite_columns: "compat_refresh_tokens.refresh_token_sha256",
};

/// The select list [`SessionRow`] decodes.
macro_rules! session_columns {
    () => {
        "compat_session_id, user_id, device_id, user_session_id, \
         CAST(is_synapse_admin AS INTEGER) AS is_synapse_admin, created_at, finished_at, \
         user_agent, human_name"
    };
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    compat_session_id: String,
    user_id: String,
    device_id: String,
    user_session_id: Option<String>,
    is_synapse_admin: i64,
    created_at: i64,
    finished_at: Option<i64>,
    user_agent: Option<String>,
    human_name: Option<String>,
}

impl TryFrom<SessionRow> for CompatSession {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("compat_sessions.compat_session_id", &row.compat_session_id)?,
            user_id: rows::ulid("compat_sessions.user_id", &row.user_id)?,
            device_id: row.device_id,
            user_session_id: rows::opt_ulid(
                "compat_sessions.user_session_id",
                row.user_session_id.as_deref(),
            )?,
            is_synapse_admin: row.is_synapse_admin != 0,
            created_at: row.created_at,
            finished_at: row.finished_at,
            user_agent: row.user_agent,
            human_name: row.human_name,
        })
    }
}

/// What a new compat session is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCompatSession<'a> {
    /// The user.
    pub user_id: Ulid,
    /// The Matrix device id.
    pub device_id: &'a str,
    /// The browser session of an SSO login.
    pub user_session_id: Option<Ulid>,
    /// Whether its tokens carry the Synapse admin scope.
    pub is_synapse_admin: bool,
    /// The `User-Agent` of the login request.
    pub user_agent: Option<&'a str>,
    /// The device display name.
    pub human_name: Option<&'a str>,
}

/// Starts a compat session.
#[tracing::instrument(
    name = "db.compat_sessions.add",
    skip_all,
    fields(user.id = %new.user_id, compat_session.id = tracing::field::Empty),
    err
)]
pub async fn add_compat_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewCompatSession<'_>,
) -> Result<CompatSession, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("compat_session.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO compat_sessions (compat_session_id, user_id, device_id, user_session_id, \
         is_synapse_admin, created_at, user_agent, human_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(new.user_id.to_string())
    .bind(new.device_id)
    .bind(new.user_session_id.map(|id| id.to_string()))
    .bind(new.is_synapse_admin)
    .bind(now)
    .bind(new.user_agent)
    .bind(new.human_name)
    .execute(&mut *conn)
    .await?;
    Ok(CompatSession {
        id,
        user_id: new.user_id,
        device_id: new.device_id.to_owned(),
        user_session_id: new.user_session_id,
        is_synapse_admin: new.is_synapse_admin,
        created_at: now,
        finished_at: None,
        user_agent: new.user_agent.map(str::to_owned),
        human_name: new.human_name.map(str::to_owned),
    })
}

/// The session with this id.
#[tracing::instrument(name = "db.compat_sessions.find", skip_all, fields(compat_session.id = %id), err)]
pub async fn find_compat_session(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<CompatSession>, StorageError> {
    let row: Option<SessionRow> = sqlx::query_as(concat!(
        "SELECT ",
        session_columns!(),
        " FROM compat_sessions WHERE compat_session_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(CompatSession::try_from).transpose()
}

/// The user's active compat sessions, oldest first.
#[tracing::instrument(name = "db.compat_sessions.list_active", skip_all, fields(user.id = %user_id), err)]
pub async fn list_active_compat_sessions(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Vec<CompatSession>, StorageError> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        "SELECT ",
        session_columns!(),
        " FROM compat_sessions WHERE user_id = $1 AND finished_at IS NULL \
         ORDER BY compat_session_id"
    ))
    .bind(user_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(CompatSession::try_from).collect()
}

/// The user's active compat sessions holding `device_id` (the "replace device" rule).
#[tracing::instrument(name = "db.compat_sessions.find_active_by_device", skip_all, fields(user.id = %user_id), err)]
pub async fn find_active_compat_sessions_by_device(
    conn: &mut AnyConnection,
    user_id: Ulid,
    device_id: &str,
) -> Result<Vec<CompatSession>, StorageError> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        "SELECT ",
        session_columns!(),
        " FROM compat_sessions WHERE user_id = $1 AND device_id = $2 AND finished_at IS NULL \
         ORDER BY compat_session_id"
    ))
    .bind(user_id.to_string())
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(CompatSession::try_from).collect()
}

/// Finishes every active compatibility session of `user_id` (revoking their tokens) and
/// returns how many were active.
pub async fn finish_all_compat_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
) -> Result<u64, StorageError> {
    let mut finished = 0;
    for session in list_active_compat_sessions(conn, user_id).await? {
        if finish_compat_session(conn, clock, session.id).await? {
            finished += 1;
        }
    }
    Ok(finished)
}

/// Finishes the session and revokes its unrevoked tokens. `false` if it was already finished
/// or does not exist.
#[tracing::instrument(name = "db.compat_sessions.finish", skip_all, fields(compat_session.id = %id), err)]
pub async fn finish_compat_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let now = clock.now_unix_ms();
    let result = sqlx::query(
        "UPDATE compat_sessions SET finished_at = $2 \
         WHERE compat_session_id = $1 AND finished_at IS NULL",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE compat_access_tokens SET revoked_at = $2 \
         WHERE compat_session_id = $1 AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE compat_refresh_tokens SET revoked_at = $2 \
         WHERE compat_session_id = $1 AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// The select list [`AccessTokenRow`] decodes.
macro_rules! access_token_columns {
    () => {
        "compat_access_token_id, compat_session_id, created_at, expires_at, revoked_at, \
         first_used_at"
    };
}

#[derive(sqlx::FromRow)]
struct AccessTokenRow {
    compat_access_token_id: String,
    compat_session_id: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    first_used_at: Option<i64>,
}

impl TryFrom<AccessTokenRow> for CompatAccessToken {
    type Error = StorageError;

    fn try_from(row: AccessTokenRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "compat_access_tokens.compat_access_token_id",
                &row.compat_access_token_id,
            )?,
            session_id: rows::ulid(
                "compat_access_tokens.compat_session_id",
                &row.compat_session_id,
            )?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            first_used_at: row.first_used_at,
        })
    }
}

/// Stores a new compat access token of the session by its hash, expiring after `ttl`
/// (`None`: never). A hash collision is [`StorageError::TokenCollision`].
#[tracing::instrument(
    name = "db.compat_access_tokens.add",
    skip_all,
    fields(compat_session.id = %session_id, compat_access_token.id = tracing::field::Empty),
    err
)]
pub async fn add_compat_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    session_id: Ulid,
    token_sha256: &str,
    ttl: Option<Duration>,
) -> Result<CompatAccessToken, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("compat_access_token.id", tracing::field::display(id));
    let expires_at = ttl.map(|ttl| now.saturating_add(rows::duration_ms(ttl)));
    sqlx::query(
        "INSERT INTO compat_access_tokens \
         (compat_access_token_id, compat_session_id, access_token_sha256, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(session_id.to_string())
    .bind(token_sha256)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &ACCESS_SHA256_UNIQUE, StorageError::TokenCollision))?;
    Ok(CompatAccessToken {
        id,
        session_id,
        created_at: now,
        expires_at,
        revoked_at: None,
        first_used_at: None,
    })
}

/// The compat access token whose text hashes to `token_sha256` (revoked and expired too).
#[tracing::instrument(name = "db.compat_access_tokens.find_by_sha256", skip_all, err)]
pub async fn find_compat_access_token_by_sha256(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<CompatAccessToken>, StorageError> {
    let row: Option<AccessTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        access_token_columns!(),
        " FROM compat_access_tokens WHERE access_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(CompatAccessToken::try_from).transpose()
}

/// Revokes the token. `false` if it was already revoked or does not exist.
#[tracing::instrument(name = "db.compat_access_tokens.revoke", skip_all, fields(compat_access_token.id = %id), err)]
pub async fn revoke_compat_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE compat_access_tokens SET revoked_at = $2 \
         WHERE compat_access_token_id = $1 AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records the token's first successful use, once.
#[tracing::instrument(name = "db.compat_access_tokens.mark_first_used", skip_all, fields(compat_access_token.id = %id), err)]
pub async fn mark_compat_access_token_first_used(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE compat_access_tokens SET first_used_at = $2 \
         WHERE compat_access_token_id = $1 AND first_used_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The select list [`RefreshTokenRow`] decodes.
macro_rules! refresh_token_columns {
    () => {
        "compat_refresh_token_id, compat_session_id, compat_access_token_id, created_at, \
         consumed_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct RefreshTokenRow {
    compat_refresh_token_id: String,
    compat_session_id: String,
    compat_access_token_id: String,
    created_at: i64,
    consumed_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<RefreshTokenRow> for CompatRefreshToken {
    type Error = StorageError;

    fn try_from(row: RefreshTokenRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "compat_refresh_tokens.compat_refresh_token_id",
                &row.compat_refresh_token_id,
            )?,
            session_id: rows::ulid(
                "compat_refresh_tokens.compat_session_id",
                &row.compat_session_id,
            )?,
            access_token_id: rows::ulid(
                "compat_refresh_tokens.compat_access_token_id",
                &row.compat_access_token_id,
            )?,
            created_at: row.created_at,
            consumed_at: row.consumed_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// Stores a new compat refresh token, issued with `access_token_id`, by its hash.
#[tracing::instrument(
    name = "db.compat_refresh_tokens.add",
    skip_all,
    fields(compat_session.id = %session_id, compat_refresh_token.id = tracing::field::Empty),
    err
)]
pub async fn add_compat_refresh_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    session_id: Ulid,
    access_token_id: Ulid,
    token_sha256: &str,
) -> Result<CompatRefreshToken, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("compat_refresh_token.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO compat_refresh_tokens (compat_refresh_token_id, compat_session_id, \
         compat_access_token_id, refresh_token_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(session_id.to_string())
    .bind(access_token_id.to_string())
    .bind(token_sha256)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &REFRESH_SHA256_UNIQUE, StorageError::TokenCollision))?;
    Ok(CompatRefreshToken {
        id,
        session_id,
        access_token_id,
        created_at: now,
        consumed_at: None,
        revoked_at: None,
    })
}

/// The compat refresh token whose text hashes to `token_sha256` (consumed and revoked too).
#[tracing::instrument(name = "db.compat_refresh_tokens.find_by_sha256", skip_all, err)]
pub async fn find_compat_refresh_token_by_sha256(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<CompatRefreshToken>, StorageError> {
    let row: Option<RefreshTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        refresh_token_columns!(),
        " FROM compat_refresh_tokens WHERE refresh_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(CompatRefreshToken::try_from).transpose()
}

/// Consumes the token (`/refresh`). `false` if it was already consumed or revoked, so two
/// concurrent refreshes cannot both win.
#[tracing::instrument(name = "db.compat_refresh_tokens.consume", skip_all, fields(compat_refresh_token.id = %id), err)]
pub async fn consume_compat_refresh_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE compat_refresh_tokens SET consumed_at = $2 \
         WHERE compat_refresh_token_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

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

#[cfg(test)]
mod tests;
