//! What a person may change about their own account on the account page, and the routes of
//! those forms (docs/protocol.md#pages). An attribute is refused with a clear message when
//! the configuration forbids changing it (`account.email_change_allowed`,
//! `account.displayname_change_allowed`, `account.account_deactivation_allowed`), or when the
//! user is linked to an upstream provider that owns it: its `claims_imports.<attribute>.action`
//! is `force` or `require`, so every login there imports the value again (upstream MAS's
//! "claims imports" documentation).

use axum::Router;
use axum::routing::get;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::{AccountState, add_email, deactivate, displayname, emails, get_page};
use crate::app::AppState;
use crate::config::upstream::ImportAction;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::model::{User, UserEmail};
use crate::routes::{self, UrlBuilder};
use crate::storage::{StorageError, upstream_links};
use crate::templates::{AccountManageView, EmailView, FormError};
use crate::upstream::{ClaimsImports, UpstreamProviders};

/// The routes of the forms managing the account.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            routes::ACCOUNT_DISPLAYNAME,
            get(get_page).post(displayname::post),
        )
        .route(routes::ACCOUNT_EMAILS, get(get_page).post(add_email::post))
        .route(
            routes::ACCOUNT_EMAIL_VERIFY,
            get(add_email::verify_get).post(add_email::verify_post),
        )
        .route(
            routes::ACCOUNT_EMAIL_RESEND,
            get(get_page).post(add_email::resend),
        )
        .route(
            routes::ACCOUNT_EMAIL_REMOVE,
            get(get_page).post(emails::remove),
        )
        .route(
            routes::ACCOUNT_EMAIL_PRIMARY,
            get(get_page).post(emails::primary),
        )
        .route(
            routes::ACCOUNT_DEACTIVATE,
            get(deactivate::get).post(deactivate::post),
        )
}

/// The signed-in user of a request, `None` without a browser session.
pub(super) async fn signed_in(
    state: &AccountState,
    jar: &CookieJar,
) -> Result<Option<User>, HtmlError> {
    let mut conn = state.db.acquire().await?;
    Ok(load_session(&mut conn, jar)
        .await?
        .map(|session| session.user))
}

/// What the user may change, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Policy {
    /// Why email addresses cannot be changed; `None` when they can.
    pub(super) email_locked: Option<String>,
    /// Why the display name cannot be changed; `None` when it can.
    pub(super) displayname_locked: Option<String>,
    /// Whether the user may close the account.
    pub(super) deactivation_allowed: bool,
}

/// What the forms of the page fill in again.
#[derive(Debug, Default)]
pub(super) struct ManageValues {
    /// The refused form's problems.
    pub(super) errors: Vec<FormError>,
    /// The address of the add form.
    pub(super) email_value: String,
    /// The display name of its form.
    pub(super) displayname_value: String,
}

impl Policy {
    /// The policy for `user_id`: the configuration, then the providers the user is linked to.
    pub(super) async fn load(
        conn: &mut AnyConnection,
        state: &AccountState,
        user_id: Ulid,
    ) -> Result<Self, StorageError> {
        let account = &state.site.account;
        let email_owner = owning_provider(conn, &state.upstream, user_id, |c| c.email).await?;
        let email_locked = if !account.email_change_allowed {
            Some("Email addresses cannot be changed on this server.".to_owned())
        } else {
            email_owner.map(|name| {
                format!("Your email address comes from {name}. Change it there, then sign in with {name} again.")
            })
        };
        let name_owner = owning_provider(conn, &state.upstream, user_id, |c| c.displayname).await?;
        let displayname_locked = if !account.displayname_change_allowed {
            Some("The display name cannot be changed on this server.".to_owned())
        } else {
            name_owner.map(|name| {
                format!("Your display name comes from {name}. Change it there, then sign in with {name} again.")
            })
        };
        Ok(Self {
            email_locked,
            displayname_locked,
            deactivation_allowed: account.account_deactivation_allowed,
        })
    }

    /// The blocks of the main page.
    pub(super) fn view(
        self,
        urls: &UrlBuilder,
        addresses: &[UserEmail],
        primary: Option<Ulid>,
        values: ManageValues,
    ) -> AccountManageView {
        let emails = addresses
            .iter()
            .map(|email| {
                let is_primary = primary == Some(email.id);
                let verified = email.confirmed_at.is_some();
                EmailView {
                    address: email.email.clone(),
                    verified,
                    primary: is_primary,
                    remove_action: urls.relative(&routes::account_email_remove(email.id)),
                    primary_action: (verified && !is_primary)
                        .then(|| urls.relative(&routes::account_email_primary(email.id))),
                }
            })
            .collect();
        AccountManageView {
            emails,
            add_email_action: urls.relative(routes::ACCOUNT_EMAILS),
            email_locked: self.email_locked,
            email_value: values.email_value,
            displayname_action: urls.relative(routes::ACCOUNT_DISPLAYNAME),
            displayname_locked: self.displayname_locked,
            displayname_value: values.displayname_value,
            deactivate_url: self
                .deactivation_allowed
                .then(|| urls.relative(routes::ACCOUNT_DEACTIVATE)),
            errors: values.errors,
        }
    }
}

/// The name of an enabled provider the user is linked to that owns the attribute `pick`
/// selects (`force` or `require`), if any.
async fn owning_provider(
    conn: &mut AnyConnection,
    upstream: &UpstreamProviders,
    user_id: Ulid,
    pick: fn(&ClaimsImports) -> ImportAction,
) -> Result<Option<String>, StorageError> {
    for provider in upstream.enabled() {
        if !matches!(
            pick(provider.claims()),
            ImportAction::Force | ImportAction::Require
        ) {
            continue;
        }
        let links = upstream_links::list_user_upstream_links(conn, user_id, &provider.id).await?;
        if !links.is_empty() {
            return Ok(Some(provider.display_name().to_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
