//! `compat_access_tokens` (migration 0010): the access tokens of compat sessions, found by the
//! lower-case hex SHA-256 of their text. The lookup with session and user is in
//! [`lookup`](super::lookup).

use std::time::Duration;

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::Clock;
use crate::model::CompatAccessToken;
use crate::rng::new_ulid;
use crate::storage::StorageError;
use crate::storage::rows::{self, Unique, map_unique};

const ACCESS_SHA256_UNIQUE: Unique = Unique {
    name: "compat_access_tokens_sha256_unique",
    sqlite_columns: "compat_access_tokens.access_token_sha256",
};

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
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE compat_access_tokens SET revoked_at = $2 \
         WHERE compat_access_token_id = $1 AND revoked_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Records the token's first successful use, once.
#[tracing::instrument(name = "db.compat_access_tokens.mark_first_used", skip_all, fields(compat_access_token.id = %id), err)]
pub async fn mark_compat_access_token_first_used(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE compat_access_tokens SET first_used_at = $2 \
         WHERE compat_access_token_id = $1 AND first_used_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}
