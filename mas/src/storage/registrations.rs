//! `user_registration_tokens` and `user_registrations` (migration 0016): the operator's
//! registration tokens, with their uses counted by one conditional UPDATE, and the
//! registrations in progress (docs/protocol.md#registration).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{NewRegistration, Registration, RegistrationToken};
use crate::rng::new_ulid;

const TOKEN_UNIQUE: Unique = Unique {
    name: "user_registration_tokens_token_unique",
    sqlite_columns: "user_registration_tokens.token",
};

macro_rules! token_columns {
    () => {
        "user_registration_token_id, token, usage_limit, times_used, created_at, last_used_at, \
         expires_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_registration_token_id: String,
    token: String,
    usage_limit: Option<i64>,
    times_used: i64,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for RegistrationToken {
    type Error = StorageError;

    fn try_from(row: TokenRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid(
                "user_registration_tokens.user_registration_token_id",
                &row.user_registration_token_id,
            )?,
            token: row.token,
            usage_limit: row
                .usage_limit
                .map(|limit| rows::narrow("user_registration_tokens.usage_limit", limit))
                .transpose()?,
            times_used: rows::narrow("user_registration_tokens.times_used", row.times_used)?,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// Issues a token. One that exists already is [`StorageError::RegistrationTokenExists`].
#[tracing::instrument(name = "db.user_registration_tokens.add", skip_all, err)]
pub async fn add_registration_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    token: &str,
    usage_limit: Option<u64>,
    expires_at: Option<i64>,
) -> Result<RegistrationToken, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    let limit = usage_limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
    sqlx::query(
        "INSERT INTO user_registration_tokens \
         (user_registration_token_id, token, usage_limit, times_used, created_at, expires_at) \
         VALUES ($1, $2, $3, 0, $4, $5)",
    )
    .bind(id.to_string())
    .bind(token)
    .bind(limit)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|error| map_unique(error, &TOKEN_UNIQUE, StorageError::RegistrationTokenExists))?;
    Ok(RegistrationToken {
        id,
        token: token.to_owned(),
        usage_limit,
        times_used: 0,
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked_at: None,
    })
}

/// The token with this text (in any state).
#[tracing::instrument(name = "db.user_registration_tokens.find_by_token", skip_all, err)]
pub async fn find_registration_token_by_token(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<RegistrationToken>, StorageError> {
    let row: Option<TokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM user_registration_tokens WHERE token = $1"
    ))
    .bind(token)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RegistrationToken::try_from).transpose()
}

/// The token with this id.
#[tracing::instrument(
    name = "db.user_registration_tokens.find",
    skip_all,
    fields(user_registration_token.id = %id),
    err
)]
pub async fn find_registration_token(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<RegistrationToken>, StorageError> {
    let row: Option<TokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM user_registration_tokens WHERE user_registration_token_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RegistrationToken::try_from).transpose()
}

/// Every token, oldest first.
#[tracing::instrument(name = "db.user_registration_tokens.list", skip_all, err)]
pub async fn list_registration_tokens(
    conn: &mut AnyConnection,
) -> Result<Vec<RegistrationToken>, StorageError> {
    let rows: Vec<TokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM user_registration_tokens ORDER BY created_at, user_registration_token_id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(RegistrationToken::try_from).collect()
}

/// Revokes the token; `false` if there is none or it was revoked already.
#[tracing::instrument(
    name = "db.user_registration_tokens.revoke",
    skip_all,
    fields(user_registration_token.id = %id),
    err
)]
pub async fn revoke_registration_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        conn,
        "UPDATE user_registration_tokens SET revoked_at = $2 \
         WHERE user_registration_token_id = $1 AND revoked_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Counts one use of the token, if it is usable now: not revoked, not expired, under its
/// limit, all checked by the UPDATE itself, so of two racing uses of a one-use token exactly
/// one wins. `false`: not usable (or no such token); nothing changed.
#[tracing::instrument(
    name = "db.user_registration_tokens.use",
    skip_all,
    fields(user_registration_token.id = %id),
    err
)]
pub async fn use_registration_token(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        conn,
        "UPDATE user_registration_tokens \
         SET times_used = times_used + 1, last_used_at = $2 \
         WHERE user_registration_token_id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2) \
         AND (usage_limit IS NULL OR times_used < usage_limit)",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

macro_rules! registration_columns {
    () => {
        "user_registration_id, username, display_name, email, hashed_password, \
         hashed_password_version, terms_url, user_registration_token_id, post_auth_action, \
         ip_address, user_agent, created_at, email_verified_at, completed_at, user_id"
    };
}

#[derive(sqlx::FromRow)]
struct RegistrationRow {
    user_registration_id: String,
    username: String,
    display_name: Option<String>,
    email: Option<String>,
    hashed_password: String,
    hashed_password_version: i64,
    terms_url: Option<String>,
    user_registration_token_id: Option<String>,
    post_auth_action: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: i64,
    email_verified_at: Option<i64>,
    completed_at: Option<i64>,
    user_id: Option<String>,
}

impl TryFrom<RegistrationRow> for Registration {
    type Error = StorageError;

    fn try_from(row: RegistrationRow) -> Result<Self, Self::Error> {
        let post_auth_action = row
            .post_auth_action
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|error| StorageError::InvalidData {
                column: "user_registrations.post_auth_action",
                reason: error.to_string(),
            })?;
        Ok(Self {
            id: rows::ulid(
                "user_registrations.user_registration_id",
                &row.user_registration_id,
            )?,
            new: NewRegistration {
                username: row.username,
                email: row.email,
                hashed_password: row.hashed_password,
                hashed_password_version: rows::narrow(
                    "user_registrations.hashed_password_version",
                    row.hashed_password_version,
                )?,
                terms_url: row.terms_url,
                registration_token_id: rows::opt_ulid(
                    "user_registrations.user_registration_token_id",
                    row.user_registration_token_id.as_deref(),
                )?,
                post_auth_action,
                ip_address: row.ip_address,
                user_agent: row.user_agent,
            },
            display_name: row.display_name,
            created_at: row.created_at,
            email_verified_at: row.email_verified_at,
            completed_at: row.completed_at,
            user_id: rows::opt_ulid("user_registrations.user_id", row.user_id.as_deref())?,
        })
    }
}

/// Stores a registration in progress.
#[tracing::instrument(
    name = "db.user_registrations.add",
    skip_all,
    fields(user.username = %new.username),
    err
)]
pub async fn add_registration(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    new: NewRegistration,
) -> Result<Registration, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    sqlx::query(
        "INSERT INTO user_registrations \
         (user_registration_id, username, email, hashed_password, hashed_password_version, \
          terms_url, user_registration_token_id, post_auth_action, ip_address, user_agent, \
          created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.to_string())
    .bind(&new.username)
    .bind(&new.email)
    .bind(&new.hashed_password)
    .bind(i64::from(new.hashed_password_version))
    .bind(&new.terms_url)
    .bind(new.registration_token_id.map(|id| id.to_string()))
    .bind(new.post_auth_action.as_ref().map(ToString::to_string))
    .bind(&new.ip_address)
    .bind(&new.user_agent)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Registration {
        id,
        new,
        display_name: None,
        created_at: now,
        email_verified_at: None,
        completed_at: None,
        user_id: None,
    })
}

/// The registration with this id.
#[tracing::instrument(
    name = "db.user_registrations.find",
    skip_all,
    fields(user_registration.id = %id),
    err
)]
pub async fn find_registration(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<Registration>, StorageError> {
    let row: Option<RegistrationRow> = sqlx::query_as(concat!(
        "SELECT ",
        registration_columns!(),
        " FROM user_registrations WHERE user_registration_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Registration::try_from).transpose()
}

/// Sets (or clears) the display name of a registration not completed yet; `false` if there
/// is none in progress.
#[tracing::instrument(
    name = "db.user_registrations.set_display_name",
    skip_all,
    fields(user_registration.id = %id),
    err
)]
pub async fn set_registration_display_name(
    conn: &mut AnyConnection,
    id: Ulid,
    display_name: Option<&str>,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE user_registrations SET display_name = $2 \
         WHERE user_registration_id = $1 AND completed_at IS NULL",
    )
    .bind(id.to_string())
    .bind(display_name)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records that the mailed code proved the address; `false` if the registration is not in
/// progress or was verified already.
#[tracing::instrument(
    name = "db.user_registrations.verify_email",
    skip_all,
    fields(user_registration.id = %id),
    err
)]
pub async fn mark_registration_email_verified(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let changed = rows::stamp(
        conn,
        "UPDATE user_registrations SET email_verified_at = $2 \
         WHERE user_registration_id = $1 AND completed_at IS NULL \
         AND email_verified_at IS NULL",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    Ok(changed == 1)
}

/// Marks the registration completed with the account it created; `false` if it was
/// completed already (a second tab finishing at the same time loses).
#[tracing::instrument(
    name = "db.user_registrations.complete",
    skip_all,
    fields(user_registration.id = %id, user.id = %user_id),
    err
)]
pub async fn complete_registration(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    user_id: Ulid,
) -> Result<bool, StorageError> {
    let result = sqlx::query(
        "UPDATE user_registrations SET completed_at = $2, user_id = $3 \
         WHERE user_registration_id = $1 AND completed_at IS NULL",
    )
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .bind(user_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
