//! Self-service registration, the parts below the pages (docs/protocol.md#registration):
//! whether registration is open under the configuration, the localpart rules a new username
//! must follow, and finishing a registration: the one transaction that consumes the token
//! and creates the account.
//!
//! The pages (`views::register`) read the form, show the refusals and keep the registration
//! bound to the browser; discovery and `/authorize` (`prompt=create`) ask [`availability`].

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;
use url::Url;

use crate::app::SiteConfig;
use crate::clock::Clock;
use crate::jobs::{self, Job};
use crate::model::{AuthenticationMethod, BrowserSession, Registration, User};
use crate::storage::{
    Database, StorageError, browser_sessions, emails, passwords, registrations, users,
};

/// What a registration asks for when it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegistrationPolicy {
    /// An email address, verified with a mailed code before the account exists.
    pub(crate) email_required: bool,
    /// A registration token issued by the operator.
    pub(crate) token_required: bool,
    /// Terms of service to accept (`branding.tos_uri`).
    pub(crate) tos_uri: Option<Url>,
}

/// Whether people may register here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Availability {
    /// Open, with these requirements.
    Open(RegistrationPolicy),
    /// `account.password_registration_enabled` is off, or passwords are.
    Closed,
    /// An email address is required but mail is off (`email.transport: blackhole`): nobody
    /// could receive the code, so nobody may start (no half-way accounts).
    MailUnavailable,
}

/// Registration under the site's configuration, with passwords and mail on or off
/// (`mail_enabled`: [`Mailer::is_enabled`](crate::email::Mailer::is_enabled)).
pub(crate) fn availability(
    site: &SiteConfig,
    passwords_enabled: bool,
    mail_enabled: bool,
) -> Availability {
    let account = &site.account;
    if !account.password_registration_enabled || !passwords_enabled {
        return Availability::Closed;
    }
    if account.password_registration_email_required && !mail_enabled {
        return Availability::MailUnavailable;
    }
    Availability::Open(RegistrationPolicy {
        email_required: account.password_registration_email_required,
        token_required: account.registration_token_required(),
        tos_uri: site.tos_uri.clone(),
    })
}

/// Whether registration is open, as a state part for handlers that only need to know that
/// (`/authorize` with `prompt=create`, the login page's link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegistrationOpen(pub(crate) bool);

impl axum::extract::FromRef<crate::app::AppState> for RegistrationOpen {
    fn from_ref(state: &crate::app::AppState) -> Self {
        let open = availability(
            &state.site,
            state.passwords.is_some(),
            state.mailer.is_enabled(),
        );
        Self(matches!(open, Availability::Open(_)))
    }
}

/// Why a localpart cannot be registered, before asking anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalpartProblem {
    /// Nothing typed.
    Empty,
    /// A character outside the Matrix user ID grammar (`a-z 0-9 . _ = - / +`).
    InvalidCharacters,
    /// Only digits: Synapse keeps those for guests.
    OnlyDigits,
    /// Starts with `_`: Synapse keeps those for application services and its own users.
    LeadingUnderscore,
    /// The full user ID would be longer than 255 characters.
    TooLong,
}

impl LocalpartProblem {
    /// The sentence shown next to the username field.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Empty => "Choose a username.",
            Self::InvalidCharacters => {
                "Use only lower-case letters, digits and the characters . _ = - / + in the \
                 username."
            }
            Self::OnlyDigits => "A username cannot be only digits.",
            Self::LeadingUnderscore => "A username cannot start with an underscore.",
            Self::TooLong => "This username is too long.",
        }
    }
}

/// Checks a new localpart against the Matrix specification's user ID grammar (Appendices,
/// "User Identifiers": `a-z 0-9 . _ = - / +`, the whole `@localpart:server` at most 255
/// bytes) and the names Synapse's registration keeps for itself (only digits: guests; a
/// leading `_`: application services and server users). Namespaces of application services
/// and names Synapse already has are asked of the homeserver afterwards.
pub(crate) fn check_localpart(localpart: &str, server_name: &str) -> Result<(), LocalpartProblem> {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+');
    if localpart.is_empty() {
        return Err(LocalpartProblem::Empty);
    }
    if !localpart.chars().all(allowed) {
        return Err(LocalpartProblem::InvalidCharacters);
    }
    if localpart.chars().all(|c| c.is_ascii_digit()) {
        return Err(LocalpartProblem::OnlyDigits);
    }
    if localpart.starts_with('_') {
        return Err(LocalpartProblem::LeadingUnderscore);
    }
    if localpart.len() + server_name.len() + 2 > 255 {
        return Err(LocalpartProblem::TooLong);
    }
    Ok(())
}

/// A plausible email address: something@something, at most 254 characters, no spaces or
/// control characters. Whether it receives mail is what the mailed code proves.
pub(crate) fn plausible_email(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// Why finishing a registration created nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FinishRefusal {
    /// No such registration, or it was completed already (by another tab).
    #[error("the registration is not in progress")]
    NotInProgress,
    /// The address was not verified yet.
    #[error("the email address is not verified")]
    EmailNotVerified,
    /// The registration token was used up, revoked or expired meanwhile.
    #[error("the registration token is no longer valid")]
    TokenUnusable,
    /// Someone took the username meanwhile.
    #[error("the username was taken meanwhile")]
    UsernameTaken,
    /// The database failed; never shown.
    #[error(transparent)]
    Internal(StorageError),
}

impl From<StorageError> for FinishRefusal {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::UsernameTaken => Self::UsernameTaken,
            error => Self::Internal(error),
        }
    }
}

/// A finished registration: the new account's first browser session.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The browser session of the new account (for the cookie).
    pub(crate) session: BrowserSession,
    /// The registration as it was before finishing (its post-auth action).
    pub(crate) registration: Registration,
}

/// Finishes registration `id` in one transaction: consumes the token (a conditional update:
/// one used up meanwhile refuses, and nothing is created), creates the user, its password,
/// its verified address and a browser session authenticated by that password, marks the
/// registration completed and queues the provisioning in the homeserver (with the display
/// name when one was chosen). The caller wakes the job worker.
pub(crate) async fn finish(
    db: &Database,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized + Send),
    id: Ulid,
) -> Result<Finished, FinishRefusal> {
    let mut tx = db.begin_write().await?;
    let registration = registrations::find_registration(&mut tx, id)
        .await?
        .filter(|registration| registration.completed_at.is_none())
        .ok_or(FinishRefusal::NotInProgress)?;
    if registration.needs_email_verification() {
        return Err(FinishRefusal::EmailNotVerified);
    }
    if let Some(token_id) = registration.new.registration_token_id
        && !registrations::use_registration_token(&mut tx, clock, token_id).await?
    {
        return Err(FinishRefusal::TokenUnusable);
    }
    let (user, session) = create_account(&mut tx, clock, rng, &registration).await?;
    if !registrations::complete_registration(&mut tx, clock, id, user.id).await? {
        return Err(FinishRefusal::NotInProgress);
    }
    let job = match &registration.display_name {
        Some(display_name) => Job::ProvisionUserWithDisplayName {
            user_id: user.id,
            display_name: display_name.clone(),
        },
        None => Job::ProvisionUser { user_id: user.id },
    };
    jobs::queue(&mut tx, clock, rng, &job).await?;
    tx.commit().await.map_err(StorageError::from)?;
    tracing::info!(
        user.id = %user.id,
        user_registration.id = %id,
        user_session.id = %session.id,
        "registration completed"
    );
    Ok(Finished {
        session,
        registration,
    })
}

/// The rows of the new account, in the caller's transaction.
async fn create_account(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized + Send),
    registration: &Registration,
) -> Result<(User, BrowserSession), StorageError> {
    let new = &registration.new;
    let user = users::add_user(conn, clock, rng, &new.username).await?;
    let password = passwords::add_password(
        conn,
        clock,
        rng,
        user.id,
        &new.hashed_password,
        new.hashed_password_version,
        None,
    )
    .await?;
    if let Some(email) = &new.email {
        emails::add_email(conn, clock, rng, user.id, email, true).await?;
    }
    let session = browser_sessions::start_browser_session(
        conn,
        clock,
        rng,
        &user,
        new.user_agent.as_deref(),
        new.ip_address.as_deref(),
    )
    .await?;
    browser_sessions::record_authentication(
        conn,
        clock,
        rng,
        session.id,
        AuthenticationMethod::Password {
            user_password_id: password.id,
        },
    )
    .await?;
    Ok((user, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_follow_the_matrix_grammar_and_synapse_reservations() {
        for good in ["alice", "a.b_c=d-e/f+g", "admin", "x1"] {
            assert_eq!(check_localpart(good, "example.com"), Ok(()), "{good}");
        }
        for (bad, problem) in [
            ("", LocalpartProblem::Empty),
            ("Alice", LocalpartProblem::InvalidCharacters),
            ("al ice", LocalpartProblem::InvalidCharacters),
            ("al:ice", LocalpartProblem::InvalidCharacters),
            ("élise", LocalpartProblem::InvalidCharacters),
            ("12345", LocalpartProblem::OnlyDigits),
            ("_bridge", LocalpartProblem::LeadingUnderscore),
        ] {
            assert_eq!(check_localpart(bad, "example.com"), Err(problem), "{bad}");
        }
        // `@` + localpart + `:` + server name: 255 fits, 256 does not.
        let server = "example.com";
        let longest = "a".repeat(255 - server.len() - 2);
        assert_eq!(check_localpart(&longest, server), Ok(()));
        let longer = format!("{longest}a");
        assert_eq!(
            check_localpart(&longer, server),
            Err(LocalpartProblem::TooLong)
        );
    }
}
