//! Adding an email address on the account page (docs/protocol.md#pages,
//! docs/protocol.md#email-verification). `POST /account/emails` checks the address, counts it
//! against the `email_authentication` rate limits (client address, mailbox, browser session),
//! starts an email authentication for this user and browser session (`auth/email.rs::start`,
//! the code mailed by the `send-email-authentication-code` job) and sends the browser to
//! `GET /account/emails/verify/{authentication_id}`, the shared code page. A right code adds the
//! address verified (or marks it verified when the user has it already), makes it primary when
//! the user had no verified address, and queues `provision-user`, all in one transaction;
//! `…/resend` mails a new code for the same address. An authentication of another user or
//! another browser session is a 404 page.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use ulid::Ulid;

use super::emails::queue_provision;
use super::manage::Policy;
use super::{AccountState, MainPage, main_page, to_login};
use crate::auth::email::{code_problem, start};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::session::load_session;
use crate::model::normalize_email;
use crate::model::{BrowserSession, EmailAuthentication, EmailAuthenticationPurpose};
use crate::pages::CsrfForm;
use crate::routes;
use crate::storage::email_authentications::{
    CodeCheck, check_email_code, find_email_authentication,
};
use crate::storage::{StorageError, emails};
use crate::templates::{EmailVerifyContext, FormError};

/// The add form.
#[derive(Debug, Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    email: String,
}

/// The code form.
#[derive(Debug, Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    code: String,
}

/// A plausible address: something@something, at most 254 characters, no spaces or control
/// characters (the mailed code proves the rest).
fn is_plausible(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// The browser session, or `None` (to the login page).
async fn session(
    state: &AccountState,
    jar: &CookieJar,
) -> Result<Option<BrowserSession>, HtmlError> {
    let mut conn = state.db.acquire().await?;
    Ok(load_session(&mut conn, jar).await?)
}

/// The page refusing the form, with `status`.
async fn refuse(
    state: &AccountState,
    jar: CookieJar,
    session: &BrowserSession,
    status: StatusCode,
    error: FormError,
    email: &str,
) -> Result<Response, HtmlError> {
    let page = MainPage {
        email_value: email.to_owned(),
        ..MainPage::refused(status, error)
    };
    main_page(state, jar, &session.user, page).await
}

/// Starts an authentication of `email` and answers 303 to its code page; a rate limit is the
/// account page with the wait (429, `Retry-After`).
async fn send_code(
    state: &AccountState,
    jar: CookieJar,
    session: &BrowserSession,
    ip: Option<IpAddr>,
    email: &str,
) -> Result<Response, HtmlError> {
    let now = state.page.clock.now_unix_ms();
    if let Err(limited) = state
        .limiter
        .check_email_authentication_send(ip, email, session.id, now)
    {
        let seconds = limited.retry_after_secs();
        let message = format!("Too many codes were sent. Wait {seconds} seconds and try again.");
        let error = FormError::field("email", message);
        let mut response = refuse(
            state,
            jar,
            session,
            StatusCode::TOO_MANY_REQUESTS,
            error,
            email,
        )
        .await?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let purpose = EmailAuthenticationPurpose::AddEmail {
        user_id: session.user.id,
        browser_session_id: session.id,
    };
    let (clock, mut rng) = (state.page.clock.as_ref(), state.page.rng.fork());
    let mut tx = state.db.begin_write().await?;
    let authentication = start(&mut tx, clock, &mut rng, purpose, email).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user.id = %session.user.id, user_email_authentication.id = %authentication.id, "email code sent from the account page");
    let url = state
        .page
        .urls
        .relative(&routes::account_email_verify(authentication.id));
    Ok((jar, Redirect::to(&url)).into_response())
}

/// `POST /account/emails`.
#[tracing::instrument(name = "handlers.views.account.emails.add.post", skip_all)]
pub(super) async fn post(
    State(state): State<AccountState>,
    ClientIp(ip): ClientIp,
    CsrfForm { jar, fields }: CsrfForm<AddForm>,
) -> Result<Response, HtmlError> {
    let Some(session) = session(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let policy = Policy::load(&mut *state.db.acquire().await?, &state, session.user.id).await?;
    if let Some(reason) = policy.email_locked {
        let error = FormError::form(reason);
        return refuse(&state, jar, &session, StatusCode::FORBIDDEN, error, "").await;
    }
    let email = fields.email.trim();
    if !is_plausible(email) {
        let error = FormError::field("email", "Enter an email address like name@example.com.");
        return refuse(&state, jar, &session, StatusCode::BAD_REQUEST, error, email).await;
    }
    let mut conn = state.db.acquire().await?;
    let known = emails::list_emails(&mut conn, session.user.id).await?;
    drop(conn);
    let wanted = normalize_email(email);
    if known
        .iter()
        .any(|e| e.confirmed_at.is_some() && normalize_email(&e.email) == wanted)
    {
        let error = FormError::field("email", "This address is already one of yours.");
        return refuse(&state, jar, &session, StatusCode::BAD_REQUEST, error, email).await;
    }
    send_code(&state, jar, &session, ip, email).await
}

/// The authentication `id` of this user and browser session, or the 404 page.
async fn own_authentication(
    state: &AccountState,
    session: &BrowserSession,
    id: &str,
) -> Result<EmailAuthentication, HtmlError> {
    let not_found = || {
        HtmlError::new(
            StatusCode::NOT_FOUND,
            "Code not found",
            "This code request does not exist or belongs to another session. Add the address \
             again from your account page.",
        )
    };
    let id: Ulid = id.parse().map_err(|_| not_found())?;
    let mut conn = state.db.acquire().await?;
    let authentication = find_email_authentication(&mut conn, id).await?;
    authentication
        .filter(|a| {
            a.purpose
                == EmailAuthenticationPurpose::AddEmail {
                    user_id: session.user.id,
                    browser_session_id: session.id,
                }
        })
        .ok_or_else(not_found)
}

/// Renders the code page.
fn render_code_page(
    state: &AccountState,
    mut jar: CookieJar,
    authentication: &EmailAuthentication,
    status: StatusCode,
    errors: Vec<FormError>,
) -> Result<Response, HtmlError> {
    let urls = &state.page.urls;
    let context = EmailVerifyContext {
        prefix: urls.prefix().to_owned(),
        csrf_token: state.page.csrf_token(&mut jar).form_value().to_owned(),
        heading: "Verify your email".to_owned(),
        email: authentication.email.clone(),
        form_action: urls.relative(&routes::account_email_verify(authentication.id)),
        resend_action: Some(urls.relative(&routes::account_email_resend(authentication.id))),
        back: Some((
            "Back to your account".to_owned(),
            urls.relative(routes::ACCOUNT),
        )),
        notice: None,
        errors,
    };
    let html = state.page.templates.render_email_verify(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// `GET /account/emails/verify/{authentication_id}`.
#[tracing::instrument(name = "handlers.views.account.emails.verify.get", skip_all)]
pub(super) async fn verify_get(
    State(state): State<AccountState>,
    Path(id): Path<String>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    let Some(session) = session(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let authentication = own_authentication(&state, &session, &id).await?;
    render_code_page(&state, jar, &authentication, StatusCode::OK, Vec::new())
}

/// `POST /account/emails/verify/{authentication_id}`.
#[tracing::instrument(name = "handlers.views.account.emails.verify.post", skip_all)]
pub(super) async fn verify_post(
    State(state): State<AccountState>,
    Path(id): Path<String>,
    CsrfForm { jar, fields }: CsrfForm<CodeForm>,
) -> Result<Response, HtmlError> {
    let Some(session) = session(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let authentication = own_authentication(&state, &session, &id).await?;
    let policy = Policy::load(&mut *state.db.acquire().await?, &state, session.user.id).await?;
    if let Some(reason) = policy.email_locked {
        let error = FormError::form(reason);
        return refuse(&state, jar, &session, StatusCode::FORBIDDEN, error, "").await;
    }
    let now = state.page.clock.now_unix_ms();
    if let Err(limited) = state
        .limiter
        .check_email_authentication_attempt(authentication.id, now)
    {
        let seconds = limited.retry_after_secs();
        let error = FormError::field(
            "code",
            format!("Too many tries. Wait {seconds} seconds and try again."),
        );
        let status = StatusCode::TOO_MANY_REQUESTS;
        let mut response = render_code_page(&state, jar, &authentication, status, vec![error])?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let mut tx = state.db.begin_write().await?;
    let check = check_email_code(
        &mut tx,
        state.page.clock.as_ref(),
        authentication.id,
        &fields.code,
    )
    .await?;
    if let Some(problem) = code_problem(&check) {
        tx.commit().await?;
        let status = match check {
            CodeCheck::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        return render_code_page(&state, jar, &authentication, status, vec![problem]);
    }
    add_verified(&mut tx, &state, session.user.id, &authentication.email).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user.id = %session.user.id, "email added from the account page");
    let notice = format!("{} was added and verified.", authentication.email);
    main_page(&state, jar, &session.user, MainPage::notice(notice)).await
}

/// Adds `email` verified to the user, or marks the row it has verified; makes it primary when
/// there was none; queues the provisioning pass.
async fn add_verified(
    conn: &mut sqlx::AnyConnection,
    state: &AccountState,
    user_id: Ulid,
    email: &str,
) -> Result<(), StorageError> {
    let clock = state.page.clock.as_ref();
    let wanted = normalize_email(email);
    let existing = emails::list_emails(conn, user_id)
        .await?
        .into_iter()
        .find(|e| normalize_email(&e.email) == wanted);
    match existing {
        Some(row) => {
            emails::mark_email_confirmed(conn, clock, row.id).await?;
        }
        None => {
            let mut rng = state.page.rng.fork();
            emails::add_email(conn, clock, &mut rng, user_id, email, true).await?;
        }
    }
    emails::ensure_primary_email(conn, user_id).await?;
    queue_provision(conn, state, user_id).await
}

/// `POST /account/emails/verify/{authentication_id}/resend`.
#[tracing::instrument(name = "handlers.views.account.emails.resend.post", skip_all)]
pub(super) async fn resend(
    State(state): State<AccountState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    CsrfForm { jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let Some(session) = session(&state, &jar).await? else {
        return Ok(to_login(&state.page.urls, None, None));
    };
    let authentication = own_authentication(&state, &session, &id).await?;
    send_code(&state, jar, &session, ip, &authentication.email).await
}

#[cfg(test)]
mod tests {
    use super::is_plausible;

    #[test]
    fn only_plausible_addresses_get_a_code() {
        assert!(is_plausible("alice@example.org"));
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a b@example.org",
            "a@localhost",
        ] {
            assert!(!is_plausible(bad), "{bad}");
        }
    }
}
