//! `compat_refresh_tokens` (migration 0010): the refresh tokens of compat sessions (`/refresh`),
//! found by the lower-case hex SHA-256 of their text. The lookup with session and user is in
//! [`lookup`](super::lookup).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::Clock;
use crate::model::CompatRefreshToken;
use crate::rng::new_ulid;
use crate::storage::StorageError;
use crate::storage::rows::{self, Unique, map_unique};

const REFRESH_SHA256_UNIQUE: Unique = Unique {
    name: "compat_refresh_tokens_sha256_unique",
    sqlite_columns: "compat_refresh_tokens.refresh_token_sha256",
};

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
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE compat_refresh_tokens SET consumed_at = $2 \
         WHERE compat_refresh_token_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}
