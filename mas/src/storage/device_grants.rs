//! `oauth2_device_code_grants`: device authorization requests through the person's approval or
//! denial to the token exchange (migration 0014; docs/protocol.md#device-authorization-grant).
//! Every change of stage is a conditional update: of two concurrent attempts exactly one wins,
//! and the loser learns it from the `false` it gets back. Approval and denial also need the codes
//! unexpired at that moment, so a person cannot approve a request after it stopped working.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique};
use crate::clock::Clock;
use crate::model::{DEVICE_CODE_LIFETIME_MS, DeviceGrant, NewDeviceGrant};
use crate::rng::new_ulid;

const DEVICE_CODE_UNIQUE: Unique = Unique {
    name: "oauth2_device_code_grants_device_code_unique",
    sqlite_columns: "oauth2_device_code_grants.device_code_sha256",
};

const USER_CODE_UNIQUE: Unique = Unique {
    name: "oauth2_device_code_grants_user_code_unique",
    sqlite_columns: "oauth2_device_code_grants.user_code",
};

macro_rules! device_grant_columns {
    () => {
        "oauth2_device_code_grant_id, oauth2_client_id, scope, device_code_sha256, user_code, \
         ip_address, user_agent, created_at, expires_at, fulfilled_at, rejected_at, \
         exchanged_at, last_polled_at, user_session_id, oauth2_session_id"
    };
}

#[derive(sqlx::FromRow)]
struct DeviceGrantRow {
    oauth2_device_code_grant_id: String,
    oauth2_client_id: String,
    scope: String,
    device_code_sha256: String,
    user_code: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: i64,
    expires_at: i64,
    fulfilled_at: Option<i64>,
    rejected_at: Option<i64>,
    exchanged_at: Option<i64>,
    last_polled_at: Option<i64>,
    user_session_id: Option<String>,
    oauth2_session_id: Option<String>,
}

impl TryFrom<DeviceGrantRow> for DeviceGrant {
    type Error = StorageError;

    fn try_from(row: DeviceGrantRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "oauth2_device_code_grants.oauth2_device_code_grant_id",
                &row.oauth2_device_code_grant_id,
            )?,
            request: NewDeviceGrant {
                client_id: rows::ulid(
                    "oauth2_device_code_grants.oauth2_client_id",
                    &row.oauth2_client_id,
                )?,
                scope: rows::parse("oauth2_device_code_grants.scope", &row.scope)?,
                device_code_sha256: row.device_code_sha256,
                user_code: row.user_code,
                ip_address: row.ip_address,
                user_agent: row.user_agent,
            },
            created_at: row.created_at,
            expires_at: row.expires_at,
            fulfilled_at: row.fulfilled_at,
            rejected_at: row.rejected_at,
            exchanged_at: row.exchanged_at,
            last_polled_at: row.last_polled_at,
            user_session_id: rows::opt_ulid(
                "oauth2_device_code_grants.user_session_id",
                row.user_session_id.as_deref(),
            )?,
            session_id: rows::opt_ulid(
                "oauth2_device_code_grants.oauth2_session_id",
                row.oauth2_session_id.as_deref(),
            )?,
        })
    }
}

/// Stores a new device grant, valid for [`DEVICE_CODE_LIFETIME_MS`]. A device code or user code
/// that is taken already is [`StorageError::TokenCollision`]: draw new codes and try again.
#[tracing::instrument(
    name = "db.oauth2_device_code_grants.add",
    skip_all,
    fields(oauth2_client.id = %request.client_id, device_grant.id = tracing::field::Empty),
    err
)]
pub async fn add_device_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    request: NewDeviceGrant,
) -> Result<DeviceGrant, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("device_grant.id", tracing::field::display(id));
    let expires_at = now.saturating_add(DEVICE_CODE_LIFETIME_MS);
    sqlx::query(
        "INSERT INTO oauth2_device_code_grants \
         (oauth2_device_code_grant_id, oauth2_client_id, scope, device_code_sha256, user_code, \
          ip_address, user_agent, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(request.client_id.to_string())
    .bind(request.scope.to_string())
    .bind(&request.device_code_sha256)
    .bind(&request.user_code)
    .bind(request.ip_address.as_deref())
    .bind(request.user_agent.as_deref())
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| {
        if DEVICE_CODE_UNIQUE.violated_by(&error) || USER_CODE_UNIQUE.violated_by(&error) {
            StorageError::TokenCollision
        } else {
            StorageError::Query(error)
        }
    })?;
    Ok(DeviceGrant {
        id,
        request,
        created_at: now,
        expires_at,
        fulfilled_at: None,
        rejected_at: None,
        exchanged_at: None,
        last_polled_at: None,
        user_session_id: None,
        session_id: None,
    })
}

/// The grant with this id.
#[tracing::instrument(name = "db.oauth2_device_code_grants.find", skip_all, fields(device_grant.id = %id), err)]
pub async fn find_device_grant(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<DeviceGrant>, StorageError> {
    let row: Option<DeviceGrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        device_grant_columns!(),
        " FROM oauth2_device_code_grants WHERE oauth2_device_code_grant_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(DeviceGrant::try_from).transpose()
}

/// The grant whose device code hashes to `device_code_sha256`, whatever its stage.
#[tracing::instrument(
    name = "db.oauth2_device_code_grants.find_by_device_code",
    skip_all,
    err
)]
pub async fn find_device_grant_by_device_code(
    conn: &mut AnyConnection,
    device_code_sha256: &str,
) -> Result<Option<DeviceGrant>, StorageError> {
    let row: Option<DeviceGrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        device_grant_columns!(),
        " FROM oauth2_device_code_grants WHERE device_code_sha256 = $1"
    ))
    .bind(device_code_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(DeviceGrant::try_from).transpose()
}

/// The grant with this user code (normalised: no hyphen, upper case), whatever its stage.
#[tracing::instrument(name = "db.oauth2_device_code_grants.find_by_user_code", skip_all, err)]
pub async fn find_device_grant_by_user_code(
    conn: &mut AnyConnection,
    user_code: &str,
) -> Result<Option<DeviceGrant>, StorageError> {
    let row: Option<DeviceGrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        device_grant_columns!(),
        " FROM oauth2_device_code_grants WHERE user_code = $1"
    ))
    .bind(user_code)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(DeviceGrant::try_from).transpose()
}

/// Records a poll of the token endpoint at `now` unless the previous one was less than
/// `min_gap_ms` before. `false` means the device polls too fast (`slow_down`, RFC 8628 §3.5);
/// the previous time stays, so a device that keeps hammering keeps being told.
#[tracing::instrument(name = "db.oauth2_device_code_grants.poll", skip_all, fields(device_grant.id = %id), err)]
pub async fn record_poll(
    conn: &mut AnyConnection,
    id: Ulid,
    now: i64,
    min_gap_ms: i64,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_device_code_grants SET last_polled_at = $2 \
         WHERE oauth2_device_code_grant_id = $1 \
           AND (last_polled_at IS NULL OR last_polled_at <= $3)",
    )
    .bind(id.to_string())
    .bind(now)
    .bind(now.saturating_sub(min_gap_ms))
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The person approved in `user_session_id`. `false` if the grant is not pending any more or its
/// codes expired.
#[tracing::instrument(
    name = "db.oauth2_device_code_grants.fulfill",
    skip_all,
    fields(device_grant.id = %id, user_session.id = %user_session_id),
    err
)]
pub async fn fulfill_device_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    user_session_id: Ulid,
) -> Result<bool, StorageError> {
    decide(
        conn,
        "UPDATE oauth2_device_code_grants SET fulfilled_at = $2, user_session_id = $3 \
         WHERE oauth2_device_code_grant_id = $1 AND expires_at > $2 \
           AND fulfilled_at IS NULL AND rejected_at IS NULL",
        id,
        clock.now_unix_ms(),
        user_session_id,
    )
    .await
}

/// The person denied in `user_session_id`. `false` if the grant is not pending any more or its
/// codes expired.
#[tracing::instrument(
    name = "db.oauth2_device_code_grants.reject",
    skip_all,
    fields(device_grant.id = %id, user_session.id = %user_session_id),
    err
)]
pub async fn reject_device_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    user_session_id: Ulid,
) -> Result<bool, StorageError> {
    decide(
        conn,
        "UPDATE oauth2_device_code_grants SET rejected_at = $2, user_session_id = $3 \
         WHERE oauth2_device_code_grant_id = $1 AND expires_at > $2 \
           AND fulfilled_at IS NULL AND rejected_at IS NULL",
        id,
        clock.now_unix_ms(),
        user_session_id,
    )
    .await
}

/// Runs an approval or denial `sql` (`$1` id, `$2` now, `$3` the browser session).
async fn decide(
    conn: &mut AnyConnection,
    sql: &'static str,
    id: Ulid,
    now: i64,
    user_session_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(sql)
        .bind(id.to_string())
        .bind(now)
        .bind(user_session_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks the grant exchanged, linking the session the exchange created (insert the session
/// first, in the same transaction). `false` when it was not fulfilled, or exchanged already;
/// the caller then rolls back.
#[tracing::instrument(
    name = "db.oauth2_device_code_grants.exchange",
    skip_all,
    fields(device_grant.id = %id, oauth2_session.id = %session_id),
    err
)]
pub async fn exchange_device_grant(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    session_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_device_code_grants SET exchanged_at = $2, oauth2_session_id = $3 \
         WHERE oauth2_device_code_grant_id = $1 AND exchanged_at IS NULL \
           AND fulfilled_at IS NOT NULL AND rejected_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(session_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
