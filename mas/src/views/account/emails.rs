//! The email forms of the account page (docs/protocol.md#pages): `POST /account/emails/{id}/remove`
//! removes an address, `POST /account/emails/{id}/primary` makes a verified one primary. Each
//! change queues `provision-user` in the same transaction, so the homeserver's 3PIDs follow
//! (only verified addresses are sent). Removing the primary address makes the oldest verified
//! one left primary. Refused, with the reason on the page, when the addresses may not be
//! changed ([`Policy`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::manage::{Policy, signed_in};
use super::{AccountState, MainPage, main_page, to_login};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::jobs::{self, Job};
use crate::model::{User, UserEmail};
use crate::pages::CsrfForm;
use crate::storage::{StorageError, emails};
use crate::templates::FormError;

/// The 404 page for an address that is not one of the user's.
fn email_not_found() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Email address not found",
        "This email address is not one of yours, or was removed already.",
    )
}

/// The user, or why the form is not taken: `Err(response)` is the answer (to the login page,
/// or the account page with the reason addresses are locked).
async fn allowed_user(
    state: &AccountState,
    jar: &CookieJar,
) -> Result<Result<User, Option<String>>, HtmlError> {
    let Some(user) = signed_in(state, jar).await? else {
        return Ok(Err(None));
    };
    let policy = Policy::load(&mut *state.db.acquire().await?, state, user.id).await?;
    match policy.email_locked {
        Some(reason) => Ok(Err(Some(reason))),
        None => Ok(Ok(user)),
    }
}

/// The answer when [`allowed_user`] refused.
async fn refused(
    state: &AccountState,
    jar: CookieJar,
    reason: Option<String>,
) -> Result<Response, HtmlError> {
    let Some(reason) = reason else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    // Only a signed-in user has a reason.
    let Some(user) = signed_in(state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let page = MainPage::refused(StatusCode::FORBIDDEN, FormError::form(reason));
    main_page(state, jar, &user, page).await
}

/// The user's address `email_id` (from the path), or the 404 page.
async fn own_email(
    conn: &mut AnyConnection,
    user: &User,
    email_id: &str,
) -> Result<UserEmail, HtmlError> {
    let id: Ulid = email_id.parse().map_err(|_| email_not_found())?;
    emails::find_email(conn, id)
        .await?
        .filter(|email| email.user_id == user.id)
        .ok_or_else(email_not_found)
}

/// Queues the provisioning pass that sends the verified addresses to the homeserver.
pub(super) async fn queue_provision(
    conn: &mut AnyConnection,
    state: &AccountState,
    user_id: Ulid,
) -> Result<(), StorageError> {
    let job = Job::ProvisionUser { user_id };
    let mut rng = state.page.rng.fork();
    jobs::queue(conn, state.page.clock.as_ref(), &mut rng, &job).await?;
    Ok(())
}

/// `POST /account/emails/{email_id}/remove`.
#[tracing::instrument(name = "handlers.views.account.emails.remove.post", skip_all)]
pub(super) async fn remove(
    State(state): State<AccountState>,
    Path(email_id): Path<String>,
    CsrfForm { jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let user = match allowed_user(&state, &jar).await? {
        Ok(user) => user,
        Err(reason) => return refused(&state, jar, reason).await,
    };
    let mut tx = state.db.begin_write().await?;
    let email = own_email(&mut tx, &user, &email_id).await?;
    emails::remove_email(&mut tx, email.id).await?;
    emails::ensure_primary_email(&mut tx, user.id).await?;
    queue_provision(&mut tx, &state, user.id).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user.id = %user.id, user_email.id = %email.id, "email removed from the account page");
    let notice = format!("{} was removed.", email.email);
    main_page(&state, jar, &user, MainPage::notice(notice)).await
}

/// `POST /account/emails/{email_id}/primary`.
#[tracing::instrument(name = "handlers.views.account.emails.primary.post", skip_all)]
pub(super) async fn primary(
    State(state): State<AccountState>,
    Path(email_id): Path<String>,
    CsrfForm { jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let user = match allowed_user(&state, &jar).await? {
        Ok(user) => user,
        Err(reason) => return refused(&state, jar, reason).await,
    };
    let mut tx = state.db.begin_write().await?;
    let email = own_email(&mut tx, &user, &email_id).await?;
    if !emails::set_primary_email(&mut tx, user.id, email.id).await? {
        // Not verified: only a proven address may be primary.
        return Err(HtmlError::bad_request(
            "Email address not verified",
            "Only a verified email address can be made primary.",
        ));
    }
    queue_provision(&mut tx, &state, user.id).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user.id = %user.id, user_email.id = %email.id, "primary email chosen on the account page");
    let notice = format!("{} is now your primary email address.", email.email);
    main_page(&state, jar, &user, MainPage::notice(notice)).await
}
