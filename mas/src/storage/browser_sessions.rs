//! `user_sessions` and `user_session_authentications`: browser sessions and how their user
//! authenticated (migration 0004).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows;
use super::users::UserRow;
use crate::clock::Clock;
use crate::model::{Authentication, AuthenticationMethod, BrowserSession, User};
use crate::rng::new_ulid;

/// A session row joined with its user (the user's columns unprefixed, see `users`).
#[derive(sqlx::FromRow)]
struct SessionRow {
    user_session_id: String,
    session_created_at: i64,
    finished_at: Option<i64>,
    user_agent: Option<String>,
    last_active_at: Option<i64>,
    last_active_ip: Option<String>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<SessionRow> for BrowserSession {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("user_sessions.user_session_id", &row.user_session_id)?,
            user: User::try_from(row.user)?,
            created_at: row.session_created_at,
            finished_at: row.finished_at,
            user_agent: row.user_agent,
            last_active_at: row.last_active_at,
            last_active_ip: row.last_active_ip,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuthenticationRow {
    user_session_authentication_id: String,
    user_session_id: String,
    created_at: i64,
    user_password_id: Option<String>,
    upstream_oauth_authorization_session_id: Option<String>,
}

impl TryFrom<AuthenticationRow> for Authentication {
    type Error = StorageError;

    fn try_from(row: AuthenticationRow) -> Result<Self, Self::Error> {
        const TABLE: &str = "user_session_authentications";
        let method = match (
            row.user_password_id,
            row.upstream_oauth_authorization_session_id,
        ) {
            (Some(id), None) => AuthenticationMethod::Password {
                user_password_id: rows::ulid("user_session_authentications.user_password_id", &id)?,
            },
            (None, Some(id)) => AuthenticationMethod::Upstream {
                upstream_oauth_authorization_session_id: rows::ulid(
                    "user_session_authentications.upstream_oauth_authorization_session_id",
                    &id,
                )?,
            },
            _ => {
                return Err(StorageError::InvalidData {
                    column: TABLE,
                    reason: "not exactly one authentication method".to_owned(),
                });
            }
        };
        Ok(Self {
            id: rows::ulid(
                "user_session_authentications.user_session_authentication_id",
                &row.user_session_authentication_id,
            )?,
            user_session_id: rows::ulid(
                "user_session_authentications.user_session_id",
                &row.user_session_id,
            )?,
            created_at: row.created_at,
            method,
        })
    }
}

/// Starts a browser session for `user` (its activity recorded as now, from `ip`).
#[tracing::instrument(name = "db.user_sessions.start", skip_all, fields(user.id = %user.id), err)]
pub async fn start_browser_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    user: &User,
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> Result<BrowserSession, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    sqlx::query(
        "INSERT INTO user_sessions \
         (user_session_id, user_id, created_at, user_agent, last_active_at, last_active_ip) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(user.id.to_string())
    .bind(now)
    .bind(user_agent)
    .bind(now)
    .bind(ip)
    .execute(&mut *conn)
    .await?;
    Ok(BrowserSession {
        id,
        user: user.clone(),
        created_at: now,
        finished_at: None,
        user_agent: user_agent.map(str::to_owned),
        last_active_at: Some(now),
        last_active_ip: ip.map(str::to_owned),
    })
}

/// The session with this id and its user, if the session is not finished. The user may be
/// locked or deactivated: the caller decides.
#[tracing::instrument(
    name = "db.user_sessions.find_active",
    skip_all,
    fields(user_session.id = %id),
    err
)]
pub async fn find_active_browser_session(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<BrowserSession>, StorageError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.user_session_id, s.created_at AS session_created_at, s.finished_at, \
                s.user_agent, s.last_active_at, s.last_active_ip, \
                u.user_id, u.username, u.created_at, u.locked_at, u.deactivated_at, \
                CAST(u.can_request_admin AS INTEGER) AS can_request_admin, \
                CAST(u.is_guest AS INTEGER) AS is_guest \
         FROM user_sessions s JOIN users u ON u.user_id = s.user_id \
         WHERE s.user_session_id = $1 AND s.finished_at IS NULL",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(BrowserSession::try_from).transpose()
}

/// Ends the session (logout). `false` if it was already finished or does not exist.
#[tracing::instrument(name = "db.user_sessions.finish", skip_all, fields(user_session.id = %id), err)]
pub async fn finish_browser_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE user_sessions SET finished_at = $2 \
         WHERE user_session_id = $1 AND finished_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Ends every active browser session of the user; returns how many.
#[tracing::instrument(name = "db.user_sessions.finish_all", skip_all, fields(user.id = %user_id), err)]
pub async fn finish_all_browser_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
) -> Result<u64, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE user_sessions SET finished_at = $2 WHERE user_id = $1 AND finished_at IS NULL",
        user_id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed)
}

/// Ends every active browser session of the user but `keep` (a password change that signs
/// out the other sessions keeps the one it was made in); returns how many.
#[tracing::instrument(
    name = "db.user_sessions.finish_others",
    skip_all,
    fields(user.id = %user_id, user_session.id = %keep),
    err
)]
pub async fn finish_other_browser_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
    keep: Ulid,
) -> Result<u64, StorageError> {
    let result = sqlx::query(
        "UPDATE user_sessions SET finished_at = $2 \
         WHERE user_id = $1 AND finished_at IS NULL AND user_session_id <> $3",
    )
    .bind(user_id.to_string())
    .bind(clock.now_unix_ms())
    .bind(keep.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// Records activity on the session at `at` from `ip`. `false` if there is no such session.
#[tracing::instrument(
    name = "db.user_sessions.record_activity",
    skip_all,
    fields(user_session.id = %id),
    err
)]
pub async fn record_browser_session_activity(
    conn: &mut AnyConnection,
    id: Ulid,
    at: i64,
    ip: Option<&str>,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE user_sessions SET last_active_at = $2, last_active_ip = $3 \
         WHERE user_session_id = $1",
    )
    .bind(id.to_string())
    .bind(at)
    .bind(ip)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records that the session's user just authenticated with `method`.
#[tracing::instrument(
    name = "db.user_session_authentications.add",
    skip_all,
    fields(user_session.id = %user_session_id),
    err
)]
pub async fn record_authentication(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    user_session_id: Ulid,
    method: AuthenticationMethod,
) -> Result<Authentication, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    let (password, upstream) = match method {
        AuthenticationMethod::Password { user_password_id } => (Some(user_password_id), None),
        AuthenticationMethod::Upstream {
            upstream_oauth_authorization_session_id,
        } => (None, Some(upstream_oauth_authorization_session_id)),
    };
    sqlx::query(
        "INSERT INTO user_session_authentications \
         (user_session_authentication_id, user_session_id, created_at, user_password_id, \
          upstream_oauth_authorization_session_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(user_session_id.to_string())
    .bind(now)
    .bind(password.map(|id| id.to_string()))
    .bind(upstream.map(|id| id.to_string()))
    .execute(&mut *conn)
    .await?;
    Ok(Authentication {
        id,
        user_session_id,
        created_at: now,
        method,
    })
}

/// The session's newest authentication (its `created_at` is the ID token's `auth_time`).
#[tracing::instrument(
    name = "db.user_session_authentications.last",
    skip_all,
    fields(user_session.id = %user_session_id),
    err
)]
pub async fn last_authentication(
    conn: &mut AnyConnection,
    user_session_id: Ulid,
) -> Result<Option<Authentication>, StorageError> {
    let row: Option<AuthenticationRow> = sqlx::query_as(
        "SELECT user_session_authentication_id, user_session_id, created_at, user_password_id, \
                upstream_oauth_authorization_session_id \
         FROM user_session_authentications WHERE user_session_id = $1 \
         ORDER BY created_at DESC, user_session_authentication_id DESC LIMIT 1",
    )
    .bind(user_session_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Authentication::try_from).transpose()
}

#[cfg(test)]
mod tests;
