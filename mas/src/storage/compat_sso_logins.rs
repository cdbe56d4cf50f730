//! `compat_sso_logins`: legacy Matrix SSO logins from `/login/sso/redirect` through the
//! "continue" page (fulfilment) to the `m.login.token` exchange (migration 0011). The login
//! token exists only from fulfilment on and is stored as SHA-256 hex. Fulfilment and exchange
//! are conditional updates: of two concurrent attempts exactly one wins.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;
use url::Url;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{COMPAT_LOGIN_TOKEN_LIFETIME_MS, CompatSsoLogin};
use crate::rng::new_ulid;

const TOKEN_UNIQUE: Unique = Unique {
    name: "compat_sso_logins_login_token_unique",
    sqlite_columns: "compat_sso_logins.login_token_sha256",
};

#[derive(sqlx::FromRow)]
struct LoginRow {
    compat_sso_login_id: String,
    redirect_uri: String,
    user_session_id: Option<String>,
    compat_session_id: Option<String>,
    created_at: i64,
    fulfilled_at: Option<i64>,
    exchanged_at: Option<i64>,
}

impl TryFrom<LoginRow> for CompatSsoLogin {
    type Error = StorageError;

    fn try_from(row: LoginRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "compat_sso_logins.compat_sso_login_id",
                &row.compat_sso_login_id,
            )?,
            redirect_uri: rows::parse("compat_sso_logins.redirect_uri", &row.redirect_uri)?,
            user_session_id: rows::opt_ulid(
                "compat_sso_logins.user_session_id",
                row.user_session_id.as_deref(),
            )?,
            compat_session_id: rows::opt_ulid(
                "compat_sso_logins.compat_session_id",
                row.compat_session_id.as_deref(),
            )?,
            created_at: row.created_at,
            fulfilled_at: row.fulfilled_at,
            exchanged_at: row.exchanged_at,
        })
    }
}

/// Stores a new pending login for the client's (validated) `redirectUrl`.
#[tracing::instrument(
    name = "db.compat_sso_logins.add",
    skip_all,
    fields(compat_sso_login.id = tracing::field::Empty),
    err
)]
pub async fn add_compat_sso_login(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    redirect_uri: Url,
) -> Result<CompatSsoLogin, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    tracing::Span::current().record("compat_sso_login.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO compat_sso_logins (compat_sso_login_id, redirect_uri, created_at) \
         VALUES ($1, $2, $3)",
    )
    .bind(id.to_string())
    .bind(redirect_uri.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(CompatSsoLogin {
        id,
        redirect_uri,
        user_session_id: None,
        compat_session_id: None,
        created_at: now,
        fulfilled_at: None,
        exchanged_at: None,
    })
}

/// The login with this id.
#[tracing::instrument(
    name = "db.compat_sso_logins.find",
    skip_all,
    fields(compat_sso_login.id = %id),
    err
)]
pub async fn find_compat_sso_login(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<CompatSsoLogin>, StorageError> {
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT compat_sso_login_id, redirect_uri, user_session_id, compat_session_id, \
         created_at, fulfilled_at, exchanged_at \
         FROM compat_sso_logins WHERE compat_sso_login_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(CompatSsoLogin::try_from).transpose()
}

/// The user approved the login in `user_session_id`: it becomes fulfilled with the hash of the
/// token handed out now. `false` if it was not pending (fulfilled already, or missing). A hash
/// collision is [`StorageError::TokenCollision`].
#[tracing::instrument(
    name = "db.compat_sso_logins.fulfill",
    skip_all,
    fields(compat_sso_login.id = %id, user_session.id = %user_session_id),
    err
)]
pub async fn fulfill_compat_sso_login(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    user_session_id: Ulid,
    login_token_sha256: &str,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE compat_sso_logins \
         SET fulfilled_at = $2, user_session_id = $3, login_token_sha256 = $4 \
         WHERE compat_sso_login_id = $1 AND fulfilled_at IS NULL AND exchanged_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(user_session_id.to_string())
    .bind(login_token_sha256)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &TOKEN_UNIQUE, StorageError::TokenCollision))?;
    Ok(result.rows_affected() == 1)
}

/// What a successful token exchange hands to the `m.login.token` handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangedLogin {
    /// The login row (link the new compat session to it with [`link_compat_session`]).
    pub compat_sso_login_id: Ulid,
    /// Who logs in.
    pub user_id: Ulid,
    /// The browser session that approved it.
    pub user_session_id: Ulid,
}

/// Trades the login token whose hash is `login_token_sha256`: marks it exchanged if it was
/// fulfilled at most [`COMPAT_LOGIN_TOKEN_LIFETIME_MS`] ago and never exchanged. `None` for
/// an unknown, expired or already used token; of two concurrent exchanges exactly one wins.
#[tracing::instrument(name = "db.compat_sso_logins.exchange", skip_all, err)]
pub async fn exchange_login_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    login_token_sha256: &str,
) -> Result<Option<ExchangedLogin>, StorageError> {
    let now = clock.now_unix_ms();
    let result = sqlx::query(
        "UPDATE compat_sso_logins SET exchanged_at = $2 \
         WHERE login_token_sha256 = $1 AND exchanged_at IS NULL \
           AND fulfilled_at IS NOT NULL AND fulfilled_at >= $3 \
           AND user_session_id IS NOT NULL",
    )
    .bind(login_token_sha256)
    .bind(now)
    .bind(now - COMPAT_LOGIN_TOKEN_LIFETIME_MS)
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() != 1 {
        return Ok(None);
    }
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT l.compat_sso_login_id, s.user_id, s.user_session_id \
         FROM compat_sso_logins l \
         JOIN user_sessions s ON s.user_session_id = l.user_session_id \
         WHERE l.login_token_sha256 = $1",
    )
    .bind(login_token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(login_id, user_id, user_session_id)| {
        Ok(ExchangedLogin {
            compat_sso_login_id: rows::ulid("compat_sso_logins.compat_sso_login_id", &login_id)?,
            user_id: rows::ulid("user_sessions.user_id", &user_id)?,
            user_session_id: rows::ulid("user_sessions.user_session_id", &user_session_id)?,
        })
    })
    .transpose()
}

/// Records the compat session an exchange created. `false` if the login is missing or
/// already linked.
#[tracing::instrument(
    name = "db.compat_sso_logins.link_session",
    skip_all,
    fields(compat_sso_login.id = %id, compat_session.id = %compat_session_id),
    err
)]
pub async fn link_compat_session(
    conn: &mut AnyConnection,
    id: Ulid,
    compat_session_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE compat_sso_logins SET compat_session_id = $2 \
         WHERE compat_sso_login_id = $1 AND compat_session_id IS NULL",
    )
    .bind(id.to_string())
    .bind(compat_session_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
