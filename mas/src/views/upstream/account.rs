//! Settling the account of a verified upstream login (upstream MAS's `claims_imports`;
//! docs/protocol.md#upstream-login), read first and written after: [`decide`] reads what exists
//! (the subject's link, a local user with the imported username, the homeserver's view of that
//! username) and picks a [`Plan`]; [`execute`] carries it out in the caller's write
//! transaction; [`log_in`] then consumes the authorization session, starts (or re-authenticates)
//! the browser session and continues the post-auth action. This file holds what the three
//! share: the plan, the claims as offered, and the check of a user's account state.
//!
//! `on_conflict` applies only to a username the provider fixes (`force`/`require`): a name the
//! person typed on the confirmation page never links to someone else's account.

mod decide;
mod execute;
mod log_in;

use sqlx::AnyConnection;
use ulid::Ulid;

pub(super) use self::decide::{UsernameCheck, check_username, decide};
pub(super) use self::execute::execute;
pub(super) use self::log_in::log_in;
use super::failure;
use crate::auth::account::{AccountRefusal, check_account};
use crate::error::HtmlError;
use crate::model::User;
use crate::storage::users;
use crate::upstream::{ImportAction, ImportedClaims, Provider};

/// The browser a login happens in, for the new browser session.
#[derive(Debug, Clone, Default)]
pub(super) struct BrowserInfo {
    /// Its `User-Agent`.
    pub(super) user_agent: Option<String>,
    /// Its address.
    pub(super) ip: Option<String>,
}

/// The account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewAccount {
    /// The Matrix localpart.
    pub(super) username: String,
    /// The display name to set in the homeserver.
    pub(super) display_name: Option<String>,
    /// A verified email address to store.
    pub(super) email: Option<String>,
}

/// What to do with a verified login.
#[derive(Debug)]
pub(super) enum Plan {
    /// The subject is linked to this (valid) user: log in.
    Linked {
        /// The link.
        link_id: Ulid,
        /// Its user.
        user: Box<User>,
    },
    /// Link the subject to this existing (valid) user (`on_conflict` add/replace/set).
    LinkExisting {
        /// The user the username belongs to.
        user: Box<User>,
        /// Detach the user's other links to this provider first (`replace`).
        replace: bool,
    },
    /// Create the account now.
    Create(NewAccount),
    /// Ask the person first (the confirmation page).
    Confirm,
}

/// Whether the provider's settings ask for the confirmation page.
pub(super) fn needs_confirmation(provider: &Provider) -> bool {
    let imports = provider.claims();
    !imports.skip_confirmation
        || [imports.localpart, imports.displayname, imports.email].contains(&ImportAction::Suggest)
}

/// The username the provider fixes (`force` or `require`d, and present).
pub(super) fn fixed_username(claims: &ImportedClaims) -> Option<&str> {
    matches!(
        claims.localpart.action,
        ImportAction::Force | ImportAction::Require
    )
    .then_some(claims.localpart.value.as_deref())
    .flatten()
}

/// A claim's value when its action imports it (anything but `ignore`).
fn imported(value: &crate::upstream::Imported) -> Option<&str> {
    (value.action != ImportAction::Ignore)
        .then_some(value.value.as_deref())
        .flatten()
}

/// The display name the claims offer.
pub(super) fn offered_display_name(claims: &ImportedClaims) -> Option<&str> {
    imported(&claims.displayname)
}

/// The (verified) email address the claims offer.
pub(super) fn offered_email(claims: &ImportedClaims) -> Option<&str> {
    imported(&claims.email).filter(|_| claims.email_verified)
}

/// The refusal of a login as `user`: deactivated, locked or a guest.
pub(super) fn check_user(provider: &Provider, user: &User) -> Result<(), HtmlError> {
    check_account(user).map_err(|refusal| match refusal {
        AccountRefusal::Deactivated => {
            failure::account_unavailable(provider, &user.username, "user_deactivated")
        }
        AccountRefusal::Locked => failure::account_locked(provider, &user.username),
        AccountRefusal::Guest => {
            failure::account_unavailable(provider, &user.username, "guest_user")
        }
    })
}

/// The user bound to the link `link_id`, checked as allowed to log in.
async fn linked_user(
    conn: &mut AnyConnection,
    provider: &Provider,
    link_id: Ulid,
    user_id: Ulid,
) -> Result<User, HtmlError> {
    let user = users::find_user(conn, user_id)
        .await?
        .ok_or_else(|| HtmlError::internal(format!("link {link_id} has no user")))?;
    check_user(provider, &user)?;
    Ok(user)
}
