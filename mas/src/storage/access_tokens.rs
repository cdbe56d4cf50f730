//! `oauth2_access_tokens` (migration 0008). Tokens are found by the lower-case hex SHA-256 of
//! their text; the hot introspection lookup is in `storage::introspection`.

use std::time::Duration;

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::AccessToken;
use crate::rng::new_ulid;

const SHA256_UNIQUE: Unique = Unique {
    name: "oauth2_access_tokens_sha256_unique",
    sqlite_columns: "oauth2_access_tokens.access_token_sha256",
};

/// The select list [`AccessTokenRow`] decodes.
macro_rules! access_token_columns {
    () => {
        "oauth2_access_token_id, oauth2_session_id, created_at AS token_created_at, \
         expires_at, revoked_at, first_used_at"
    };
}

/// An `oauth2_access_tokens` row (the introspection join uses these names too).
#[derive(sqlx::FromRow)]
pub(super) struct AccessTokenRow {
    oauth2_access_token_id: String,
    oauth2_session_id: String,
    #[sqlx(rename = "token_created_at")]
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    first_used_at: Option<i64>,
}

impl TryFrom<AccessTokenRow> for AccessToken {
    type Error = StorageError;

    fn try_from(row: AccessTokenRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "oauth2_access_tokens.oauth2_access_token_id",
                &row.oauth2_access_token_id,
            )?,
            session_id: rows::ulid(
                "oauth2_access_tokens.oauth2_session_id",
                &row.oauth2_session_id,
            )?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            first_used_at: row.first_used_at,
        })
    }
}

/// Stores a new access token of the session by its hash, expiring after `ttl` (`None`: never).
/// A hash collision is [`StorageError::TokenCollision`].
#[tracing::instrument(
    name = "db.oauth2_access_tokens.add",
    skip_all,
    fields(oauth2_session.id = %session_id, access_token.id = tracing::field::Empty),
    err
)]
pub async fn add_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    session_id: Ulid,
    token_sha256: &str,
    ttl: Option<Duration>,
) -> Result<AccessToken, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("access_token.id", tracing::field::display(id));
    let expires_at = ttl.map(|ttl| now.saturating_add(rows::duration_ms(ttl)));
    sqlx::query(
        "INSERT INTO oauth2_access_tokens \
         (oauth2_access_token_id, oauth2_session_id, access_token_sha256, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(session_id.to_string())
    .bind(token_sha256)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &SHA256_UNIQUE, StorageError::TokenCollision))?;
    Ok(AccessToken {
        id,
        session_id,
        created_at: now,
        expires_at,
        revoked_at: None,
        first_used_at: None,
    })
}

/// The token with this id.
#[tracing::instrument(name = "db.oauth2_access_tokens.find", skip_all, fields(access_token.id = %id), err)]
pub async fn find_access_token(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<AccessToken>, StorageError> {
    let row: Option<AccessTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        access_token_columns!(),
        " FROM oauth2_access_tokens WHERE oauth2_access_token_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AccessToken::try_from).transpose()
}

/// The token whose text hashes to `token_sha256` (revoked and expired ones too).
#[tracing::instrument(name = "db.oauth2_access_tokens.find_by_sha256", skip_all, err)]
pub async fn find_access_token_by_sha256(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<AccessToken>, StorageError> {
    let row: Option<AccessTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        access_token_columns!(),
        " FROM oauth2_access_tokens WHERE access_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AccessToken::try_from).transpose()
}

/// Revokes the token. `false` if it was already revoked or does not exist.
#[tracing::instrument(name = "db.oauth2_access_tokens.revoke", skip_all, fields(access_token.id = %id), err)]
pub async fn revoke_access_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_access_tokens SET revoked_at = $2 \
         WHERE oauth2_access_token_id = $1 AND revoked_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Revokes every token of the session that is not revoked yet (a replayed refresh token
/// ends the whole session, RFC 9700 §4.14.2); returns how many.
#[tracing::instrument(
    name = "db.oauth2_access_tokens.revoke_all_of_session",
    skip_all,
    fields(oauth2_session.id = %session_id),
    err
)]
pub async fn revoke_session_access_tokens(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    session_id: Ulid,
) -> Result<u64, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_access_tokens SET revoked_at = $2 \
         WHERE oauth2_session_id = $1 AND revoked_at IS NULL",
        session_id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed)
}

/// Records the token's first successful use, once: `false` if it was already recorded (so
/// introspection writes at most once per token).
#[tracing::instrument(
    name = "db.oauth2_access_tokens.mark_first_used",
    skip_all,
    fields(access_token.id = %id),
    err
)]
pub async fn mark_access_token_first_used(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_access_tokens SET first_used_at = $2 \
         WHERE oauth2_access_token_id = $1 AND first_used_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests;
