//! `oauth2_sessions`: OAuth 2.0 sessions (migration 0006).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows;
use crate::clock::Clock;
use crate::model::{NewSession, Session};
use crate::rng::new_ulid;

/// The select list [`SessionRow`] decodes.
macro_rules! session_columns {
    () => {
        "oauth2_session_id, oauth2_client_id, user_id, user_session_id, scope, \
         created_at AS session_created_at, finished_at, user_agent, last_active_at, \
         last_active_ip, human_name"
    };
}

/// An `oauth2_sessions` row (also decoded from the introspection join, under these names).
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    oauth2_session_id: String,
    oauth2_client_id: String,
    user_id: Option<String>,
    user_session_id: Option<String>,
    scope: String,
    #[sqlx(rename = "session_created_at")]
    created_at: i64,
    finished_at: Option<i64>,
    user_agent: Option<String>,
    last_active_at: Option<i64>,
    last_active_ip: Option<String>,
    human_name: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("oauth2_sessions.oauth2_session_id", &row.oauth2_session_id)?,
            client_id: rows::ulid("oauth2_sessions.oauth2_client_id", &row.oauth2_client_id)?,
            user_id: rows::opt_ulid("oauth2_sessions.user_id", row.user_id.as_deref())?,
            user_session_id: rows::opt_ulid(
                "oauth2_sessions.user_session_id",
                row.user_session_id.as_deref(),
            )?,
            scope: rows::parse("oauth2_sessions.scope", &row.scope)?,
            created_at: row.created_at,
            finished_at: row.finished_at,
            user_agent: row.user_agent,
            last_active_at: row.last_active_at,
            last_active_ip: row.last_active_ip,
            human_name: row.human_name,
        })
    }
}

/// Creates a session (at token exchange, or for client_credentials).
#[tracing::instrument(
    name = "db.oauth2_sessions.add",
    skip_all,
    fields(oauth2_client.id = %new.client_id, oauth2_session.id = tracing::field::Empty),
    err
)]
pub async fn create_oauth2_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewSession,
) -> Result<Session, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("oauth2_session.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO oauth2_sessions \
         (oauth2_session_id, oauth2_client_id, user_id, user_session_id, scope, created_at, \
          user_agent, human_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(new.client_id.to_string())
    .bind(new.user_id.map(|id| id.to_string()))
    .bind(new.user_session_id.map(|id| id.to_string()))
    .bind(new.scope.to_string())
    .bind(now)
    .bind(new.user_agent.as_deref())
    .bind(new.human_name.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(Session {
        id,
        client_id: new.client_id,
        user_id: new.user_id,
        user_session_id: new.user_session_id,
        scope: new.scope,
        created_at: now,
        finished_at: None,
        user_agent: new.user_agent,
        last_active_at: None,
        last_active_ip: None,
        human_name: new.human_name,
    })
}

/// The session with this id, finished or not.
#[tracing::instrument(name = "db.oauth2_sessions.find", skip_all, fields(oauth2_session.id = %id), err)]
pub async fn find_oauth2_session(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<Session>, StorageError> {
    let row: Option<SessionRow> = sqlx::query_as(concat!(
        "SELECT ",
        session_columns!(),
        " FROM oauth2_sessions WHERE oauth2_session_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Session::try_from).transpose()
}

/// Ends the session (revocation, logout). `false` if it was already finished or does not
/// exist. Its tokens become inactive with it; deleting the device in Synapse is the caller's.
#[tracing::instrument(name = "db.oauth2_sessions.finish", skip_all, fields(oauth2_session.id = %id), err)]
pub async fn finish_oauth2_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_sessions SET finished_at = $2 \
         WHERE oauth2_session_id = $1 AND finished_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Ends every active session of the user; returns how many.
#[tracing::instrument(name = "db.oauth2_sessions.finish_all", skip_all, fields(user.id = %user_id), err)]
pub async fn finish_all_oauth2_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
) -> Result<u64, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_sessions SET finished_at = $2 WHERE user_id = $1 AND finished_at IS NULL",
        user_id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed)
}

/// The user's active sessions, oldest first (device sync, session lists and limits).
#[tracing::instrument(
    name = "db.oauth2_sessions.list_active",
    skip_all,
    fields(user.id = %user_id),
    err
)]
pub async fn list_active_oauth2_sessions(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<Vec<Session>, StorageError> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        "SELECT ",
        session_columns!(),
        " FROM oauth2_sessions WHERE user_id = $1 AND finished_at IS NULL \
         ORDER BY created_at, oauth2_session_id"
    ))
    .bind(user_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Session::try_from).collect()
}

/// Records activity at `at` from `ip`. `false` if there is no such session. Introspection
/// calls this off the hot path; debounce per session before calling.
#[tracing::instrument(
    name = "db.oauth2_sessions.record_activity",
    skip_all,
    fields(oauth2_session.id = %id),
    err
)]
pub async fn record_oauth2_session_activity(
    conn: &mut AnyConnection,
    id: Ulid,
    at: i64,
    ip: Option<&str>,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_sessions SET last_active_at = $2, last_active_ip = $3 \
         WHERE oauth2_session_id = $1",
    )
    .bind(id.to_string())
    .bind(at)
    .bind(ip)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
