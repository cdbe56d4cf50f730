//! `user_recovery_sessions` and `user_recovery_tickets`: password recovery requests and the
//! single-use tickets mailed for them (migration 0017; docs/protocol.md#pages). A ticket is
//! looked up by its SHA-256 only, and used by a conditional update: of two racing uses exactly
//! one wins, and only while the ticket is unexpired.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique};
use crate::clock::Clock;
use crate::model::{RECOVERY_TICKET_LIFETIME_MS, RecoverySession, RecoveryTicket};
use crate::rng::new_ulid;

const TICKET_UNIQUE: Unique = Unique {
    name: "user_recovery_tickets_ticket_unique",
    sqlite_columns: "user_recovery_tickets.ticket_sha256",
};

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_recovery_session_id: String,
    email: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: i64,
    consumed_at: Option<i64>,
}

impl TryFrom<SessionRow> for RecoverySession {
    type Error = StorageError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "user_recovery_sessions.user_recovery_session_id",
                &row.user_recovery_session_id,
            )?,
            email: row.email,
            ip_address: row.ip_address,
            user_agent: row.user_agent,
            created_at: row.created_at,
            consumed_at: row.consumed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    user_recovery_ticket_id: String,
    user_recovery_session_id: String,
    user_email_id: String,
    user_id: String,
    ticket_sha256: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<TicketRow> for RecoveryTicket {
    type Error = StorageError;

    fn try_from(row: TicketRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "user_recovery_tickets.user_recovery_ticket_id",
                &row.user_recovery_ticket_id,
            )?,
            session_id: rows::ulid(
                "user_recovery_tickets.user_recovery_session_id",
                &row.user_recovery_session_id,
            )?,
            user_email_id: rows::ulid("user_recovery_tickets.user_email_id", &row.user_email_id)?,
            user_id: rows::ulid("user_recovery_tickets.user_id", &row.user_id)?,
            ticket_sha256: row.ticket_sha256,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

/// Records a request for `email` (already normalized).
#[tracing::instrument(name = "db.user_recovery_sessions.add", skip_all, err)]
pub async fn add_recovery_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    email: &str,
    ip_address: Option<&str>,
    user_agent: Option<&str>,
) -> Result<RecoverySession, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    sqlx::query(
        "INSERT INTO user_recovery_sessions \
         (user_recovery_session_id, email, ip_address, user_agent, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(email)
    .bind(ip_address)
    .bind(user_agent)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(RecoverySession {
        id,
        email: email.to_owned(),
        ip_address: ip_address.map(str::to_owned),
        user_agent: user_agent.map(str::to_owned),
        created_at: now,
        consumed_at: None,
    })
}

/// The request `id`.
#[tracing::instrument(
    name = "db.user_recovery_sessions.find",
    skip_all,
    fields(user_recovery_session.id = %id),
    err
)]
pub async fn find_recovery_session(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<RecoverySession>, StorageError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT user_recovery_session_id, email, ip_address, user_agent, created_at, \
                consumed_at \
         FROM user_recovery_sessions WHERE user_recovery_session_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RecoverySession::try_from).transpose()
}

/// What a new ticket is for.
#[derive(Debug, Clone, Copy)]
pub struct NewRecoveryTicket<'a> {
    /// The request it answers.
    pub session_id: Ulid,
    /// The verified address it is mailed to.
    pub user_email_id: Ulid,
    /// Whose password it sets.
    pub user_id: Ulid,
    /// SHA-256 hex of the ticket.
    pub ticket_sha256: &'a str,
}

/// Stores a ticket valid for [`RECOVERY_TICKET_LIFETIME_MS`]. A hash already stored is
/// [`StorageError::TokenCollision`] (practically impossible with 128 random bits).
#[tracing::instrument(
    name = "db.user_recovery_tickets.add",
    skip_all,
    fields(user_recovery_session.id = %new.session_id, user.id = %new.user_id),
    err
)]
pub async fn add_recovery_ticket(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewRecoveryTicket<'_>,
) -> Result<RecoveryTicket, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    let expires_at = now + RECOVERY_TICKET_LIFETIME_MS;
    sqlx::query(
        "INSERT INTO user_recovery_tickets \
         (user_recovery_ticket_id, user_recovery_session_id, user_email_id, user_id, \
          ticket_sha256, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(new.session_id.to_string())
    .bind(new.user_email_id.to_string())
    .bind(new.user_id.to_string())
    .bind(new.ticket_sha256)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| rows::map_unique(error, &TICKET_UNIQUE, StorageError::TokenCollision))?;
    Ok(RecoveryTicket {
        id,
        session_id: new.session_id,
        user_email_id: new.user_email_id,
        user_id: new.user_id,
        ticket_sha256: new.ticket_sha256.to_owned(),
        created_at: now,
        expires_at,
        used_at: None,
    })
}

/// The ticket whose SHA-256 is `ticket_sha256`, used or not.
#[tracing::instrument(name = "db.user_recovery_tickets.find_by_ticket", skip_all, err)]
pub async fn find_recovery_ticket(
    conn: &mut AnyConnection,
    ticket_sha256: &str,
) -> Result<Option<RecoveryTicket>, StorageError> {
    let row: Option<TicketRow> = sqlx::query_as(
        "SELECT user_recovery_ticket_id, user_recovery_session_id, user_email_id, user_id, \
                ticket_sha256, created_at, expires_at, used_at \
         FROM user_recovery_tickets WHERE ticket_sha256 = $1",
    )
    .bind(ticket_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RecoveryTicket::try_from).transpose()
}

/// Uses the ticket `id` now, if it is unused and unexpired, and marks its request consumed.
/// `false` when it was used already (by a racing request too) or has expired: nothing changes.
#[tracing::instrument(
    name = "db.user_recovery_tickets.use",
    skip_all,
    fields(user_recovery_ticket.id = %ticket.id),
    err
)]
pub async fn use_recovery_ticket(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    ticket: &RecoveryTicket,
) -> Result<bool, StorageError> {
    let now = clock.now_unix_ms();
    let used = rows::stamp(
        &mut *conn,
        "UPDATE user_recovery_tickets SET used_at = $2 \
         WHERE user_recovery_ticket_id = $1 AND used_at IS NULL AND expires_at > $2",
        ticket.id,
        now,
    )
    .await?;
    if used != 1 {
        return Ok(false);
    }
    rows::stamp(
        &mut *conn,
        "UPDATE user_recovery_sessions SET consumed_at = $2 \
         WHERE user_recovery_session_id = $1 AND consumed_at IS NULL",
        ticket.session_id,
        now,
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests;
