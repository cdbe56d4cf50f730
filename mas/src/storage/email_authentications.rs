//! `user_email_authentications` (migration 0015): mailed codes that prove someone reads an
//! address (docs/protocol.md#email-verification). [`check_email_code`] counts the attempt before
//! it compares, in one conditional update, so that no more than
//! [`EMAIL_CODE_MAX_ATTEMPTS`] codes are ever compared against one authentication, however many
//! requests race; the first right code completes it, once.

use rand::{Rng as _, RngCore};
use sqlx::AnyConnection;
use subtle::ConstantTimeEq as _;
use ulid::Ulid;

use super::StorageError;
use super::rows;
use crate::clock::Clock;
use crate::model::{
    EMAIL_CODE_DIGITS, EMAIL_CODE_LIFETIME_MS, EMAIL_CODE_MAX_ATTEMPTS, EmailAuthentication,
    EmailAuthenticationPurpose, normalize_email,
};
use crate::rng::new_ulid;

macro_rules! columns {
    () => {
        "user_email_authentication_id, user_registration_id, user_id, user_session_id, email, \
         code, created_at, expires_at, attempts, completed_at"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    user_email_authentication_id: String,
    user_registration_id: Option<String>,
    user_id: Option<String>,
    user_session_id: Option<String>,
    email: String,
    code: String,
    created_at: i64,
    expires_at: i64,
    attempts: i32,
    completed_at: Option<i64>,
}

impl TryFrom<Row> for EmailAuthentication {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        let registration = rows::opt_ulid(
            "user_email_authentications.user_registration_id",
            row.user_registration_id.as_deref(),
        )?;
        let user = rows::opt_ulid("user_email_authentications.user_id", row.user_id.as_deref())?;
        let session = rows::opt_ulid(
            "user_email_authentications.user_session_id",
            row.user_session_id.as_deref(),
        )?;
        let purpose = match (registration, user, session) {
            (Some(registration_id), None, _) => {
                EmailAuthenticationPurpose::Registration { registration_id }
            }
            (None, Some(user_id), Some(browser_session_id)) => {
                EmailAuthenticationPurpose::AddEmail {
                    user_id,
                    browser_session_id,
                }
            }
            _ => {
                return Err(StorageError::InvalidData {
                    column: "user_email_authentications.user_registration_id",
                    reason: "neither a registration nor a user with a browser session".to_owned(),
                });
            }
        };
        Ok(Self {
            id: rows::ulid(
                "user_email_authentications.user_email_authentication_id",
                &row.user_email_authentication_id,
            )?,
            purpose,
            email: row.email,
            code: row.code,
            created_at: row.created_at,
            expires_at: row.expires_at,
            attempts: row.attempts,
            completed_at: row.completed_at,
        })
    }
}

/// A fresh random code: [`EMAIL_CODE_DIGITS`] decimal digits, uniformly drawn.
fn new_code(rng: &mut (impl RngCore + ?Sized)) -> String {
    let bound = 10u32.pow(EMAIL_CODE_DIGITS as u32);
    format!(
        "{:0width$}",
        rng.gen_range(0..bound),
        width = EMAIL_CODE_DIGITS
    )
}

/// Makes a new authentication of `email` for `purpose` with a fresh code, valid for
/// [`EMAIL_CODE_LIFETIME_MS`]. Mailing the code is the caller's (a job queued in the same
/// transaction).
#[tracing::instrument(name = "db.user_email_authentications.add", skip_all, err)]
pub async fn add_email_authentication(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    purpose: EmailAuthenticationPurpose,
    email: &str,
) -> Result<EmailAuthentication, StorageError> {
    let now = clock.now_unix_ms();
    let id = new_ulid(now, rng);
    let code = new_code(rng);
    let expires_at = now.saturating_add(EMAIL_CODE_LIFETIME_MS);
    let (registration, user, session) = match purpose {
        EmailAuthenticationPurpose::Registration { registration_id } => {
            (Some(registration_id.to_string()), None, None)
        }
        EmailAuthenticationPurpose::AddEmail {
            user_id,
            browser_session_id,
        } => (
            None,
            Some(user_id.to_string()),
            Some(browser_session_id.to_string()),
        ),
    };
    sqlx::query(
        "INSERT INTO user_email_authentications \
         (user_email_authentication_id, user_registration_id, user_id, user_session_id, email, \
          email_normalized, code, created_at, expires_at, attempts, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL)",
    )
    .bind(id.to_string())
    .bind(registration)
    .bind(user)
    .bind(session)
    .bind(email)
    .bind(normalize_email(email))
    .bind(&code)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(EmailAuthentication {
        id,
        purpose,
        email: email.to_owned(),
        code,
        created_at: now,
        expires_at,
        attempts: 0,
        completed_at: None,
    })
}

/// The authentication with this id, if any.
#[tracing::instrument(name = "db.user_email_authentications.find", skip_all, fields(user_email_authentication.id = %id), err)]
pub async fn find_email_authentication(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<EmailAuthentication>, StorageError> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM user_email_authentications WHERE user_email_authentication_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(EmailAuthentication::try_from).transpose()
}

/// The newest authentication of a registration, if any (a "send a new code" makes another).
#[tracing::instrument(name = "db.user_email_authentications.latest_for_registration", skip_all, fields(user_registration.id = %registration_id), err)]
pub async fn latest_for_registration(
    conn: &mut AnyConnection,
    registration_id: Ulid,
) -> Result<Option<EmailAuthentication>, StorageError> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM user_email_authentications WHERE user_registration_id = $1 \
          ORDER BY created_at DESC, user_email_authentication_id DESC LIMIT 1"
    ))
    .bind(registration_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(EmailAuthentication::try_from).transpose()
}

/// What typing a code achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The right code: the authentication is now completed (returned as it now is).
    Accepted(EmailAuthentication),
    /// A wrong code; this many more may be tried.
    Wrong {
        /// Codes that may still be tried (0: send a new code).
        attempts_left: i32,
    },
    /// Every attempt was used; a new code must be sent.
    TooManyAttempts,
    /// The code is older than its lifetime.
    Expired,
    /// It was completed already.
    AlreadyUsed,
    /// No such authentication.
    NotFound,
}

/// Tries `code` against the authentication `id`: counts the attempt first (only while it is
/// open, unexpired and under the limit), then compares in constant time, then completes it
/// with a conditional update (of two racing right codes, one is accepted). Surrounding spaces
/// and a space or hyphen between the digits are ignored.
#[tracing::instrument(name = "db.user_email_authentications.check_code", skip_all, fields(user_email_authentication.id = %id), err)]
pub async fn check_email_code(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    code: &str,
) -> Result<CodeCheck, StorageError> {
    let now = clock.now_unix_ms();
    let counted = sqlx::query(
        "UPDATE user_email_authentications SET attempts = attempts + 1 \
         WHERE user_email_authentication_id = $1 AND completed_at IS NULL \
           AND expires_at > $2 AND attempts < $3",
    )
    .bind(id.to_string())
    .bind(now)
    .bind(EMAIL_CODE_MAX_ATTEMPTS)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let Some(current) = find_email_authentication(conn, id).await? else {
        return Ok(CodeCheck::NotFound);
    };
    if counted == 0 {
        return Ok(if current.completed_at.is_some() {
            CodeCheck::AlreadyUsed
        } else if current.is_expired(now) {
            CodeCheck::Expired
        } else {
            CodeCheck::TooManyAttempts
        });
    }
    let typed: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let right = typed.len() == current.code.len()
        && bool::from(typed.as_bytes().ct_eq(current.code.as_bytes()));
    if !right {
        return Ok(CodeCheck::Wrong {
            attempts_left: current.attempts_left(),
        });
    }
    let won = rows::stamp(
        conn,
        "UPDATE user_email_authentications SET completed_at = $2 \
         WHERE user_email_authentication_id = $1 AND completed_at IS NULL",
        id,
        now,
    )
    .await?;
    if won == 0 {
        return Ok(CodeCheck::AlreadyUsed);
    }
    Ok(CodeCheck::Accepted(EmailAuthentication {
        completed_at: Some(now),
        ..current
    }))
}

#[cfg(test)]
mod tests;
