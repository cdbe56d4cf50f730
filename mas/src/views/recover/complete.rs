//! `GET/POST /recover/complete?ticket=…` (docs/protocol.md#pages): the mailed link's page. GET
//! shows the new-password form for a usable ticket (the ticket rides along in a hidden field);
//! a ticket that is unknown, expired or used already, or an account that is locked or
//! deactivated, gets a clear page instead, with a link to ask again.
//!
//! POST order: CSRF; availability; the ticket and its account; the new password (twice,
//! strength); then, in one transaction, the ticket is used (a conditional update: of two
//! racing uses one wins), the password set, and every session of the account ended (browser,
//! OAuth, compat) with a device sync queued, so Synapse forgets the devices and their tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{RecoverState, unavailable};
use crate::auth::account::check_account;
use crate::auth::new_password::{HashedPassword, check_new_password};
use crate::auth::sessions::end_all_sessions;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::homeserver::HomeserverConnection;
use crate::jobs::{self, Job};
use crate::model::{RecoveryTicket, User};
use crate::pages::{CsrfForm, PageState, bad_query};
use crate::routes;
use crate::storage::{recovery, users};
use crate::templates::{FormError, RecoverCompleteContext, StrengthView};
use crate::views::notice::notice;
use crate::views::password_form::refusal_view;

/// The link's query.
#[derive(Debug, Deserialize)]
pub(in crate::views) struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

/// The form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(in crate::views) struct CompleteForm {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

/// Why a link does not lead to the form.
enum Refused {
    /// Unknown, expired or used.
    Ticket,
    /// The account is locked, deactivated or a guest.
    Account,
}

impl Refused {
    fn page(&self, page: &PageState) -> Result<Response, HtmlError> {
        match self {
            Self::Ticket => notice(
                page,
                StatusCode::GONE,
                "This link no longer works",
                "Recovery links work once, for one hour, and only the newest one you asked for \
                 is sure to work. Ask for a new link.",
                Some((page.urls.relative(routes::RECOVER), "Ask for a new link")),
            ),
            Self::Account => notice(
                page,
                StatusCode::FORBIDDEN,
                "This account cannot be recovered",
                "The account is locked or deactivated. Contact the administrator of this \
                 server.",
                Some((page.urls.relative(routes::LOGIN), "Back to sign in")),
            ),
        }
    }
}

/// The usable ticket `ticket` and its account, or why not.
async fn load(
    state: &RecoverState,
    page: &PageState,
    ticket: &str,
) -> Result<Result<(RecoveryTicket, User), Refused>, HtmlError> {
    if ticket.is_empty() {
        return Ok(Err(Refused::Ticket));
    }
    let hash = sha256_hex(ticket);
    let mut conn = state.db.acquire().await?;
    let found = recovery::find_recovery_ticket(&mut conn, &hash).await?;
    // The lookup is by hash; the comparison again in constant time costs nothing.
    let Some(found) = found.filter(|found| {
        constant_time_eq(found.ticket_sha256.as_bytes(), hash.as_bytes())
            && found.is_usable(page.clock.now_unix_ms())
    }) else {
        return Ok(Err(Refused::Ticket));
    };
    let Some(user) = users::find_user(&mut conn, found.user_id).await? else {
        return Ok(Err(Refused::Ticket));
    };
    if check_account(&user).is_err() {
        tracing::info!(user.id = %user.id, "password recovery refused: the account may not log in");
        return Ok(Err(Refused::Account));
    }
    Ok(Ok((found, user)))
}

#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one page, each built by the handler"
)]
fn render(
    page: &PageState,
    mut jar: CookieJar,
    status: StatusCode,
    homeserver: &dyn HomeserverConnection,
    user: &User,
    ticket: &str,
    errors: Vec<FormError>,
    strength: Option<StrengthView>,
) -> Result<Response, HtmlError> {
    let context = RecoverCompleteContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: page.csrf_token(&mut jar).form_value().to_owned(),
        form_action: page.urls.relative(routes::RECOVER_COMPLETE),
        ticket: ticket.to_owned(),
        mxid: homeserver.mxid(&user.username),
        errors,
        strength,
    };
    let html = page.templates.render_recover_complete(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// `GET /recover/complete?ticket=…`.
#[tracing::instrument(name = "handlers.views.recover.complete.get", skip_all)]
pub(in crate::views) async fn get(
    State(page): State<PageState>,
    State(state): State<RecoverState>,
    State(homeserver): State<std::sync::Arc<dyn HomeserverConnection>>,
    jar: CookieJar,
    query: Result<StrictQuery<TicketQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    if state.manager().is_none() {
        return unavailable(&page);
    }
    let (_, user) = match load(&state, &page, &query.ticket).await? {
        Ok(found) => found,
        Err(refused) => return refused.page(&page),
    };
    let homeserver = homeserver.as_ref();
    render(
        &page,
        jar,
        StatusCode::OK,
        homeserver,
        &user,
        &query.ticket,
        Vec::new(),
        None,
    )
}

/// `POST /recover/complete`.
#[tracing::instrument(name = "handlers.views.recover.complete.post", skip_all)]
pub(in crate::views) async fn post(
    State(page): State<PageState>,
    State(state): State<RecoverState>,
    State(homeserver): State<std::sync::Arc<dyn HomeserverConnection>>,
    CsrfForm { jar, fields: form }: CsrfForm<CompleteForm>,
) -> Result<Response, HtmlError> {
    let Some(manager) = state.manager() else {
        return unavailable(&page);
    };
    let (ticket, user) = match load(&state, &page, &form.ticket).await? {
        Ok(found) => found,
        Err(refused) => return refused.page(&page),
    };
    let inputs = [user.username.as_str(), state.site.server_name.as_str()];
    let new = (&form.new_password, &form.new_password_confirm);
    if let Err(refusal) = check_new_password(manager, new.0, new.1, &inputs) {
        let (error, strength) = refusal_view(refusal);
        let status = StatusCode::BAD_REQUEST;
        let hs = homeserver.as_ref();
        return render(
            &page,
            jar,
            status,
            hs,
            &user,
            &form.ticket,
            vec![error],
            strength,
        );
    }
    let hashed = HashedPassword::new(manager, &page.rng, &form.new_password)
        .await
        .map_err(HtmlError::internal)?;
    if !recover(&page, &state, &ticket, &hashed).await? {
        return Refused::Ticket.page(&page);
    }
    notice(
        &page,
        StatusCode::OK,
        "Password changed — sign in",
        "Your password has been changed and every session of your account has ended. Sign in \
         again with your new password, in this browser and in your apps.",
        Some((page.urls.relative(routes::LOGIN), "Sign in")),
    )
}

/// In one transaction: uses the ticket (`false`: another request used it first, nothing
/// changed), sets the password and ends every session with a device sync queued.
async fn recover(
    page: &PageState,
    state: &RecoverState,
    ticket: &RecoveryTicket,
    hashed: &HashedPassword,
) -> Result<bool, HtmlError> {
    let clock = page.clock.as_ref();
    let mut rng = page.rng.fork();
    let user_id = ticket.user_id;
    let mut tx = state.db.begin_write().await?;
    if !recovery::use_recovery_ticket(&mut tx, clock, ticket).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    hashed.store(&mut tx, clock, &mut rng, user_id).await?;
    let ended = end_all_sessions(&mut tx, clock, user_id).await?;
    jobs::queue(&mut tx, clock, &mut rng, &Job::SyncDevices { user_id }).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(
        user.id = %user_id,
        user_recovery_ticket.id = %ticket.id,
        sessions.ended = ended.total(),
        "password recovered"
    );
    Ok(true)
}
