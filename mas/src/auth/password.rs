//! Password authentication, written once for the login page (`POST /login`) and compat login
//! (`m.login.password`): rate limits per address and then per account before any password is
//! looked at; the user; its active password, verified and upgraded to the current hashing
//! scheme when due; then the account state, so that whether an account is locked is only told
//! to someone who knows its password. An unknown username, or an account without a password,
//! still costs one verification against a dummy hash, so the answer time does not tell which
//! usernames exist.
//!
//! The person names the account by its username, or (when `account.login_with_email_allowed`)
//! by a verified email address ([`LoginIdentifier`]): an address that is verified for no user,
//! or for several, is an unknown user, with the same dummy verification and the same answer.
//!
//! Whether password login is on is the caller's first check, before reading its own fields:
//! a handler builds no [`PasswordLogin`] when it is off (there is no password manager).
//! Reading the fields, the wording of each [`PasswordRefusal`] and what a success starts (a
//! browser session, a compat session) stay with the callers.

use std::net::IpAddr;

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::account::{AccountRefusal, check_account};
use crate::clock::Clock;
use crate::crypto::passwords::{PasswordError, PasswordManager};
use crate::model::User;
use crate::ratelimit::{RateLimited, RateLimiter};
use crate::rng::RngSource;
use crate::storage::{Database, StorageError, emails, passwords, users};

/// Why a password login is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasswordRefusal {
    /// Too many attempts from the address or on the account.
    #[error(transparent)]
    RateLimited(RateLimited),
    /// Unknown user, no password, or the wrong one (never told apart).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password is right, but the account may not log in.
    #[error(transparent)]
    Account(AccountRefusal),
    /// The database or the hashing failed; never shown.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<StorageError> for PasswordRefusal {
    fn from(error: StorageError) -> Self {
        Self::Internal(Box::new(error))
    }
}

/// How the person names the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginIdentifier<'a> {
    /// A localpart.
    Username(&'a str),
    /// An email address, verified for exactly one user.
    Email(&'a str),
}

impl<'a> LoginIdentifier<'a> {
    /// What a person typed in a "username or email" field: an address when emails may be used
    /// and the text has an `@` that does not start a Matrix ID (localparts never contain one),
    /// else the localpart of the text.
    pub(crate) fn parse(input: &'a str, server_name: &str, email_allowed: bool) -> Self {
        let trimmed = input.trim();
        if email_allowed && !trimmed.starts_with('@') && trimmed.contains('@') {
            return Self::Email(trimmed);
        }
        Self::Username(localpart_of(input, server_name))
    }
}

/// A user whose password was checked.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// Who logs in.
    pub(crate) user: User,
    /// The stored password that matched.
    password_id: Ulid,
    /// A hash of the same password by the current scheme (version, hash), when the stored
    /// one is due for an upgrade.
    upgrade: Option<(u16, String)>,
}

impl Authenticated {
    /// Stores the upgraded hash, if there is one, in the caller's transaction (so it is kept
    /// only if the login is). Returns the id of the password the user now logs in with.
    pub(crate) async fn store_upgrade(
        &self,
        conn: &mut AnyConnection,
        clock: &dyn Clock,
        rng: &mut (impl RngCore + ?Sized),
    ) -> Result<Ulid, StorageError> {
        let Some((version, hash)) = &self.upgrade else {
            return Ok(self.password_id);
        };
        let new = passwords::add_password(
            conn,
            clock,
            rng,
            self.user.id,
            hash,
            *version,
            Some(self.password_id),
        )
        .await?;
        tracing::info!(user.id = %self.user.id, password.version = version, "password hash upgraded");
        Ok(new.id)
    }
}

/// The handles a password login needs. It exists only while password login is on: the
/// [`PasswordManager`] is there exactly then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PasswordLogin<'a> {
    /// The database (a connection is taken for the lookups only, never while hashing).
    pub(crate) db: &'a Database,
    /// The injected clock.
    pub(crate) clock: &'a dyn Clock,
    /// The password rate limits.
    pub(crate) limiter: &'a RateLimiter,
    /// Password hashing.
    pub(crate) manager: &'a PasswordManager,
    /// The injected randomness (the salt of an upgraded hash).
    pub(crate) rng: &'a RngSource,
}

impl<'a> PasswordLogin<'a> {
    /// Checks `password` for `username` (a localpart) from `ip`, in the order of the module
    /// documentation.
    pub(crate) async fn authenticate(
        &self,
        ip: Option<IpAddr>,
        username: &str,
        password: &str,
    ) -> Result<Authenticated, PasswordRefusal> {
        self.authenticate_as(ip, LoginIdentifier::Username(username), password)
            .await
    }

    /// Checks `password` for the account `identifier` names, from `ip`, in the order of the
    /// module documentation.
    #[tracing::instrument(name = "auth.password.authenticate", skip_all)]
    pub(crate) async fn authenticate_as(
        &self,
        ip: Option<IpAddr>,
        identifier: LoginIdentifier<'_>,
        password: &str,
    ) -> Result<Authenticated, PasswordRefusal> {
        let now = self.clock.now_unix_ms();
        if let Err(limited) = self.limiter.check_password_ip(ip, now) {
            tracing::info!(client.ip = ?ip, "password login refused: too many attempts from this address");
            return Err(PasswordRefusal::RateLimited(limited));
        }
        let mut conn = self.db.acquire().await?;
        let found = match identifier {
            LoginIdentifier::Username(username) => {
                users::find_user_by_username(&mut conn, username).await?
            }
            LoginIdentifier::Email(address) => user_by_verified_email(&mut conn, address).await?,
        };
        let Some(user) = found else {
            drop(conn);
            self.manager.verify_dummy(password).await;
            return Err(PasswordRefusal::InvalidCredentials);
        };
        if let Err(limited) = self.limiter.check_password_account(user.id, now) {
            tracing::info!(user.id = %user.id, "password login refused: too many attempts on this account");
            return Err(PasswordRefusal::RateLimited(limited));
        }
        let stored = passwords::active_password(&mut conn, user.id).await?;
        drop(conn);
        let Some(stored) = stored else {
            self.manager.verify_dummy(password).await;
            return Err(PasswordRefusal::InvalidCredentials);
        };
        let mut rng = self.rng.fork();
        let upgrade = match self
            .manager
            .verify_and_upgrade(&mut rng, stored.version, &stored.hashed_password, password)
            .await
        {
            Ok(upgrade) => upgrade,
            Err(PasswordError::Mismatch) => {
                tracing::info!(user.id = %user.id, "password login refused: wrong password");
                return Err(PasswordRefusal::InvalidCredentials);
            }
            Err(error) => return Err(PasswordRefusal::Internal(Box::new(error))),
        };
        check_account(&user).map_err(PasswordRefusal::Account)?;
        Ok(Authenticated {
            user,
            password_id: stored.id,
            upgrade,
        })
    }
}

/// The one user for whom `address` is verified; `None` when no user or several have it.
async fn user_by_verified_email(
    conn: &mut AnyConnection,
    address: &str,
) -> Result<Option<User>, StorageError> {
    let owners: std::collections::BTreeSet<Ulid> = emails::find_emails_by_address(conn, address)
        .await?
        .into_iter()
        .filter(|email| email.confirmed_at.is_some())
        .map(|email| email.user_id)
        .collect();
    let mut owners = owners.into_iter();
    match (owners.next(), owners.next()) {
        (Some(user_id), None) => users::find_user(conn, user_id).await,
        _ => Ok(None),
    }
}

/// The localpart a person typed or a client hinted: `alice`, `@alice:server` or
/// `mxid:@alice:server` (upstream's `login_hint` form) for this server; anything else as is.
pub(crate) fn localpart_of<'a>(input: &'a str, server_name: &str) -> &'a str {
    let input = input.trim();
    let mxid = input.strip_prefix("mxid:").unwrap_or(input);
    mxid.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .filter(|(_, server)| *server == server_name)
        .map_or(input, |(localpart, _)| localpart)
}

#[cfg(test)]
mod tests;
