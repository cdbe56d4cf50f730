//! `compat_sessions` (migration 0010): the legacy Matrix login API's sessions, one per device.
//! Finishing a session revokes its tokens in the same statements.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::Clock;
use crate::model::CompatSession;
use crate::rng::new_ulid;
use crate::storage::StorageError;
use crate::storage::rows;

/// The select list [`SessionRow`] decodes.
macro_rules! session_columns {
    () => {
        "compat_session_id, user_id, device_id, user_session_id, \
         CAST(is_synapse_admin AS INTEGER) AS is_synapse_admin, created_at, finished_at, \
         user_agent, human_name"
    };
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) compat_session_id: String,
    pub(super) user_id: String,
    pub(super) device_id: String,
    pub(super) user_session_id: Option<String>,
    pub(super) is_synapse_admin: i64,
    pub(super) created_at: i64,
    pub(super) finished_at: Option<i64>,
    pub(super) user_agent: Option<String>,
    pub(super) human_name: Option<String>,
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
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE compat_sessions SET finished_at = $2 \
         WHERE compat_session_id = $1 AND finished_at IS NULL",
        id,
        now,
    )
    .await?;
    if changed != 1 {
        return Ok(false);
    }
    rows::stamp(
        &mut *conn,
        "UPDATE compat_access_tokens SET revoked_at = $2 \
         WHERE compat_session_id = $1 AND revoked_at IS NULL",
        id,
        now,
    )
    .await?;
    rows::stamp(
        &mut *conn,
        "UPDATE compat_refresh_tokens SET revoked_at = $2 \
         WHERE compat_session_id = $1 AND revoked_at IS NULL",
        id,
        now,
    )
    .await?;
    Ok(true)
}
