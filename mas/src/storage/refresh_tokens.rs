//! `oauth2_refresh_tokens` (migration 0008). Refresh tokens rotate on every use: the used one is
//! consumed and linked to its successor by a conditional update, so of two concurrent refreshes
//! with the same token exactly one wins (docs/protocol.md#refresh-token-grant).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::RefreshToken;
use crate::rng::new_ulid;

const SHA256_UNIQUE: Unique = Unique {
    name: "oauth2_refresh_tokens_sha256_unique",
    sqlite_columns: "oauth2_refresh_tokens.refresh_token_sha256",
};

/// The select list [`RefreshTokenRow`] decodes.
macro_rules! refresh_token_columns {
    () => {
        "oauth2_refresh_token_id, oauth2_session_id, oauth2_access_token_id, \
         created_at AS token_created_at, consumed_at, revoked_at, next_oauth2_refresh_token_id"
    };
}

/// An `oauth2_refresh_tokens` row (the introspection join uses these names too).
#[derive(sqlx::FromRow)]
pub(super) struct RefreshTokenRow {
    oauth2_refresh_token_id: String,
    oauth2_session_id: String,
    oauth2_access_token_id: Option<String>,
    #[sqlx(rename = "token_created_at")]
    created_at: i64,
    consumed_at: Option<i64>,
    revoked_at: Option<i64>,
    next_oauth2_refresh_token_id: Option<String>,
}

impl TryFrom<RefreshTokenRow> for RefreshToken {
    type Error = StorageError;

    fn try_from(row: RefreshTokenRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "oauth2_refresh_tokens.oauth2_refresh_token_id",
                &row.oauth2_refresh_token_id,
            )?,
            session_id: rows::ulid(
                "oauth2_refresh_tokens.oauth2_session_id",
                &row.oauth2_session_id,
            )?,
            access_token_id: rows::opt_ulid(
                "oauth2_refresh_tokens.oauth2_access_token_id",
                row.oauth2_access_token_id.as_deref(),
            )?,
            created_at: row.created_at,
            consumed_at: row.consumed_at,
            revoked_at: row.revoked_at,
            next_refresh_token_id: rows::opt_ulid(
                "oauth2_refresh_tokens.next_oauth2_refresh_token_id",
                row.next_oauth2_refresh_token_id.as_deref(),
            )?,
        })
    }
}

/// Stores a new refresh token of the session by its hash, paired with the access token
/// issued with it. A hash collision is [`StorageError::TokenCollision`].
#[tracing::instrument(
    name = "db.oauth2_refresh_tokens.add",
    skip_all,
    fields(oauth2_session.id = %session_id, refresh_token.id = tracing::field::Empty),
    err
)]
pub async fn add_refresh_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    session_id: Ulid,
    access_token_id: Option<Ulid>,
    token_sha256: &str,
) -> Result<RefreshToken, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("refresh_token.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO oauth2_refresh_tokens \
         (oauth2_refresh_token_id, oauth2_session_id, oauth2_access_token_id, \
          refresh_token_sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(session_id.to_string())
    .bind(access_token_id.map(|id| id.to_string()))
    .bind(token_sha256)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &SHA256_UNIQUE, StorageError::TokenCollision))?;
    Ok(RefreshToken {
        id,
        session_id,
        access_token_id,
        created_at: now,
        consumed_at: None,
        revoked_at: None,
        next_refresh_token_id: None,
    })
}

/// The token with this id (to follow `next_refresh_token_id`).
#[tracing::instrument(name = "db.oauth2_refresh_tokens.find", skip_all, fields(refresh_token.id = %id), err)]
pub async fn find_refresh_token(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<RefreshToken>, StorageError> {
    let row: Option<RefreshTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        refresh_token_columns!(),
        " FROM oauth2_refresh_tokens WHERE oauth2_refresh_token_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RefreshToken::try_from).transpose()
}

/// The token whose text hashes to `token_sha256` (consumed and revoked ones too).
#[tracing::instrument(name = "db.oauth2_refresh_tokens.find_by_sha256", skip_all, err)]
pub async fn find_refresh_token_by_sha256(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<RefreshToken>, StorageError> {
    let row: Option<RefreshTokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        refresh_token_columns!(),
        " FROM oauth2_refresh_tokens WHERE refresh_token_sha256 = $1"
    ))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RefreshToken::try_from).transpose()
}

/// Consumes the token and links its successor (insert the successor first, in the same
/// transaction). Returns whether this call won: `false` if it was already consumed or
/// revoked, or does not exist.
#[tracing::instrument(
    name = "db.oauth2_refresh_tokens.consume",
    skip_all,
    fields(refresh_token.id = %id, refresh_token.next = %next_id),
    err
)]
pub async fn consume_refresh_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    next_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_refresh_tokens \
         SET consumed_at = $2, next_oauth2_refresh_token_id = $3 \
         WHERE oauth2_refresh_token_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(next_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// For the lost-response rule (docs/protocol.md#refresh-token-grant): re-points a consumed token
/// from its unused successor `expected_next` to the fresh `new_next`. Returns whether this call
/// won: `false` if the link had already moved.
#[tracing::instrument(
    name = "db.oauth2_refresh_tokens.replace_successor",
    skip_all,
    fields(refresh_token.id = %id, refresh_token.next = %new_next),
    err
)]
pub async fn replace_refresh_token_successor(
    conn: &mut AnyConnection,
    id: Ulid,
    expected_next: Ulid,
    new_next: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE oauth2_refresh_tokens SET next_oauth2_refresh_token_id = $3 \
         WHERE oauth2_refresh_token_id = $1 AND next_oauth2_refresh_token_id = $2",
    )
    .bind(id.to_string())
    .bind(expected_next.to_string())
    .bind(new_next.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Revokes the token. `false` if it was already revoked or does not exist.
#[tracing::instrument(name = "db.oauth2_refresh_tokens.revoke", skip_all, fields(refresh_token.id = %id), err)]
pub async fn revoke_refresh_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_refresh_tokens SET revoked_at = $2 \
         WHERE oauth2_refresh_token_id = $1 AND revoked_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Revokes every token of the session that is not revoked yet, consumed ones included (a
/// replayed refresh token ends the whole session, RFC 9700 §4.14.2); returns how many.
#[tracing::instrument(
    name = "db.oauth2_refresh_tokens.revoke_all_of_session",
    skip_all,
    fields(oauth2_session.id = %session_id),
    err
)]
pub async fn revoke_session_refresh_tokens(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    session_id: Ulid,
) -> Result<u64, StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE oauth2_refresh_tokens SET revoked_at = $2 \
         WHERE oauth2_session_id = $1 AND revoked_at IS NULL",
        session_id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed)
}

#[cfg(test)]
mod tests;
