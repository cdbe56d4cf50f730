//! `GET/POST /account/deactivate` (docs/protocol.md#pages): closes the account. The page warns
//! and asks for the password again (checked like a login, with the same rate limits), or, for
//! an account without one (made by an upstream login, or password login off), for the
//! username typed out. "Also erase my messages" is Synapse's `erase`.
//!
//! One transaction marks the user deactivated, ends every session (browser, OAuth 2.0 and
//! compat, `auth/sessions.rs`), removes the email addresses and queues `deactivate-user`,
//! which deletes the user in the homeserver (its devices and tokens go with it). The browser's
//! session cookie is cleared and the page says "Your account is closed". Every way in refuses
//! a deactivated account afterwards (`auth/account.rs`).

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::manage::signed_in;
use super::{AccountState, to_login};
use crate::auth::password::{PasswordLogin, PasswordRefusal};
use crate::auth::sessions::end_all_sessions;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::jobs::{self, Job};
use crate::model::User;
use crate::pages::{CsrfForm, user_view};
use crate::routes;
use crate::storage::{StorageError, emails, passwords, users};
use crate::templates::{DeactivateContext, FormError};

/// The form.
#[derive(Debug, Deserialize)]
pub(super) struct DeactivateForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    username: String,
    erase: Option<String>,
}

/// The page when the configuration does not let users close their account.
fn not_allowed() -> HtmlError {
    HtmlError::new(
        StatusCode::FORBIDDEN,
        "Closing accounts is not available",
        "This server does not let you close your account yourself. Ask its administrator.",
    )
}

/// Whether the confirmation asks for the password: the account has one and password login
/// is on.
async fn needs_password(state: &AccountState, user: &User) -> Result<bool, StorageError> {
    if state.passwords.is_none() {
        return Ok(false);
    }
    let mut conn = state.db.acquire().await?;
    Ok(passwords::active_password(&mut conn, user.id)
        .await?
        .is_some())
}

/// Renders the page.
async fn render(
    state: &AccountState,
    mut jar: CookieJar,
    user: &User,
    status: StatusCode,
    build: impl FnOnce(DeactivateContext) -> DeactivateContext,
) -> Result<Response, HtmlError> {
    let page = &state.page;
    let context = build(DeactivateContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: page.csrf_token(&mut jar).form_value().to_owned(),
        user: user_view(state.homeserver.as_ref(), user).await,
        form_action: page.urls.relative(routes::ACCOUNT_DEACTIVATE),
        needs_password: needs_password(state, user).await?,
        username: user.username.clone(),
        erase: false,
        errors: Vec::new(),
        account_url: page.urls.relative(routes::ACCOUNT),
        closed: false,
    });
    let html = page.templates.render_account_deactivate(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// `GET /account/deactivate`.
#[tracing::instrument(name = "handlers.views.account.deactivate.get", skip_all)]
pub(super) async fn get(
    State(state): State<AccountState>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    let Some(user) = signed_in(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    if !state.site.account.account_deactivation_allowed {
        return Err(not_allowed());
    }
    render(&state, jar, &user, StatusCode::OK, |context| context).await
}

/// Why a confirmation was refused.
struct Refusal {
    status: StatusCode,
    error: FormError,
    retry_after: Option<u64>,
}

impl Refusal {
    fn field(status: StatusCode, field: &str, message: &str) -> Self {
        Self {
            status,
            error: FormError::field(field, message),
            retry_after: None,
        }
    }
}

/// Checks the confirmation: the password (as a login: rate limits first, then the hash), or
/// the username typed out.
async fn confirm(
    state: &AccountState,
    ip: Option<IpAddr>,
    user: &User,
    form: &DeactivateForm,
) -> Result<Result<(), Refusal>, HtmlError> {
    let manager = match state.passwords.as_deref() {
        Some(manager) if needs_password(state, user).await? => manager,
        _ => {
            if form.username.trim() == user.username {
                return Ok(Ok(()));
            }
            let message = format!("Type your username, {}, to confirm.", user.username);
            return Ok(Err(Refusal::field(
                StatusCode::BAD_REQUEST,
                "username",
                &message,
            )));
        }
    };
    if form.password.is_empty() {
        let refusal = Refusal::field(StatusCode::BAD_REQUEST, "password", "Enter your password.");
        return Ok(Err(refusal));
    }
    let login = PasswordLogin {
        db: &state.db,
        clock: state.page.clock.as_ref(),
        limiter: &state.limiter,
        manager,
        rng: &state.page.rng,
    };
    match login.authenticate(ip, &user.username, &form.password).await {
        Ok(_) => Ok(Ok(())),
        Err(PasswordRefusal::RateLimited(limited)) => {
            let seconds = limited.retry_after_secs();
            let message = format!("Too many attempts. Wait {seconds} seconds and try again.");
            Ok(Err(Refusal {
                retry_after: Some(seconds),
                ..Refusal::field(StatusCode::TOO_MANY_REQUESTS, "password", &message)
            }))
        }
        Err(PasswordRefusal::Internal(error)) => Err(HtmlError::internal(error)),
        Err(PasswordRefusal::InvalidCredentials | PasswordRefusal::Account(_)) => Ok(Err(
            Refusal::field(StatusCode::FORBIDDEN, "password", "Wrong password."),
        )),
    }
}

/// `POST /account/deactivate`.
#[tracing::instrument(name = "handlers.views.account.deactivate.post", skip_all)]
pub(super) async fn post(
    State(state): State<AccountState>,
    ClientIp(ip): ClientIp,
    CsrfForm { mut jar, fields }: CsrfForm<DeactivateForm>,
) -> Result<Response, HtmlError> {
    let Some(user) = signed_in(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    if !state.site.account.account_deactivation_allowed {
        return Err(not_allowed());
    }
    let erase = fields.erase.is_some();
    if let Err(refusal) = confirm(&state, ip, &user, &fields).await? {
        let mut response = render(&state, jar, &user, refusal.status, |context| {
            DeactivateContext {
                erase,
                errors: vec![refusal.error],
                ..context
            }
        })
        .await?;
        if let Some(seconds) = refusal.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return Ok(response);
    }
    deactivate(&state, &user, erase).await?;
    tracing::info!(user.id = %user.id, erase, "account closed from the account page");
    jar.clear_session();
    render(&state, jar, &user, StatusCode::OK, |context| {
        DeactivateContext {
            closed: true,
            ..context
        }
    })
    .await
}

/// The deactivation itself, in one transaction (the module documentation).
async fn deactivate(state: &AccountState, user: &User, erase: bool) -> Result<(), StorageError> {
    let clock = state.page.clock.as_ref();
    let mut rng = state.page.rng.fork();
    let mut tx = state.db.begin_write().await?;
    users::deactivate_user(&mut tx, clock, user.id).await?;
    end_all_sessions(&mut tx, clock, user.id).await?;
    emails::remove_all_emails(&mut tx, user.id).await?;
    let job = Job::DeactivateUser {
        user_id: user.id,
        hs_erase: erase,
    };
    jobs::queue(&mut tx, clock, &mut rng, &job).await?;
    tx.commit().await?;
    state.jobs.wake();
    Ok(())
}
