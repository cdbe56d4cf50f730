//! `GET/POST /recover` (docs/protocol.md#pages): asks for a password recovery link by email,
//! when recovery is on (passwords on, `account.password_recovery_enabled`, mail configured);
//! otherwise the page says recovery is unavailable. The link's page is [`complete`].
//!
//! POST order: CSRF; availability; the address (trimmed, looks like one); the rate limits per
//! client address and per address asked for; then a recovery session is stored with a
//! `send-recovery-emails` job in one transaction. The answer is the same page whether or not an
//! account has the address, and the request does the same work either way: which accounts
//! have it verified, and the mail to each, are the job's business
//! (`jobs::handlers::send_recovery_emails`).

pub(super) mod complete;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::app::{AppState, SiteConfig};
use crate::crypto::passwords::PasswordManager;
use crate::email::Mailer;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::jobs::{self, Job, JobWaker};
use crate::model::normalize_email;
use crate::pages::{CsrfForm, PageState};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::storage::{Database, recovery};
use crate::templates::{FormError, RecoverContext};
use crate::views::notice::notice;

/// The longest address accepted (RFC 5321 §4.5.3.1.3: a path is at most 256 octets, the
/// address inside it 254).
const MAX_EMAIL_LEN: usize = 254;

/// The parts of the state the recovery pages read besides those of [`PageState`].
#[derive(Debug, Clone)]
pub(super) struct RecoverState {
    db: Database,
    passwords: Option<Arc<PasswordManager>>,
    limiter: RateLimiter,
    site: Arc<SiteConfig>,
    mailer: Arc<Mailer>,
    jobs: JobWaker,
}

impl FromRef<AppState> for RecoverState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
            site: state.site.clone(),
            mailer: state.mailer.clone(),
            jobs: state.jobs.clone(),
        }
    }
}

/// Whether password recovery is offered: passwords on, `account.password_recovery_enabled`,
/// and mail that goes somewhere. The login page shows "Forgot password?" exactly then.
pub(super) fn recovery_available(
    site: &SiteConfig,
    passwords: Option<&PasswordManager>,
    mailer: &Mailer,
) -> bool {
    passwords.is_some() && site.account.password_recovery_enabled && mailer.is_enabled()
}

impl RecoverState {
    /// The password manager, when recovery is offered.
    fn manager(&self) -> Option<&PasswordManager> {
        let manager = self.passwords.as_deref()?;
        recovery_available(&self.site, Some(manager), &self.mailer).then_some(manager)
    }
}

/// The page for recovery that is off.
pub(super) fn unavailable(page: &PageState) -> Result<Response, HtmlError> {
    notice(
        page,
        StatusCode::NOT_FOUND,
        "Password recovery is unavailable",
        "This server does not offer password recovery by email. Contact its administrator \
         to get back into your account.",
        Some((page.urls.relative(routes::LOGIN), "Back to sign in")),
    )
}

/// The form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(super) struct RecoverForm {
    #[serde(default)]
    email: String,
}

fn render(
    page: &PageState,
    mut jar: CookieJar,
    status: StatusCode,
    email: &str,
    errors: Vec<FormError>,
    sent: bool,
) -> Result<Response, HtmlError> {
    let context = RecoverContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: page.csrf_token(&mut jar).form_value().to_owned(),
        form_action: page.urls.relative(routes::RECOVER),
        email: email.to_owned(),
        errors,
        sent,
        login_url: page.urls.relative(routes::LOGIN),
    };
    let html = page.templates.render_recover(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// `GET /recover`.
#[tracing::instrument(name = "handlers.views.recover.get", skip_all)]
pub(super) async fn get(
    State(page): State<PageState>,
    State(state): State<RecoverState>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    if state.manager().is_none() {
        return unavailable(&page);
    }
    render(&page, jar, StatusCode::OK, "", Vec::new(), false)
}

/// `POST /recover`.
#[tracing::instrument(name = "handlers.views.recover.post", skip_all)]
pub(super) async fn post(
    State(page): State<PageState>,
    State(state): State<RecoverState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm { jar, fields: form }: CsrfForm<RecoverForm>,
) -> Result<Response, HtmlError> {
    if state.manager().is_none() {
        return unavailable(&page);
    }
    let email = form.email.trim();
    if !looks_like_an_address(email) {
        let error = FormError::field("email", "Enter an email address, like name@example.com.");
        return render(
            &page,
            jar,
            StatusCode::BAD_REQUEST,
            email,
            vec![error],
            false,
        );
    }
    let normalized = normalize_email(email);
    let now = page.clock.now_unix_ms();
    if let Err(limited) = state.limiter.check_account_recovery(ip, &normalized, now) {
        let seconds = limited.retry_after_secs();
        tracing::info!(client.ip = ?ip, "recovery request refused: too many requests");
        let message = format!("Too many requests. Wait {seconds} seconds and try again.");
        let mut response = render(
            &page,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            email,
            vec![FormError::form(message)],
            false,
        )?;
        let value = HeaderValue::from(seconds);
        response.headers_mut().insert(header::RETRY_AFTER, value);
        return Ok(response);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    start(&page, &state, &normalized, ip, user_agent).await?;
    render(&page, jar, StatusCode::OK, email, Vec::new(), true)
}

/// Stores the request and its job in one transaction, then wakes the worker.
async fn start(
    page: &PageState,
    state: &RecoverState,
    email: &str,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<(), HtmlError> {
    let clock = page.clock.as_ref();
    let mut rng = page.rng.fork();
    let ip = ip.map(|ip| ip.to_string());
    let mut tx = state.db.begin_write().await?;
    let session =
        recovery::add_recovery_session(&mut tx, clock, &mut rng, email, ip.as_deref(), user_agent)
            .await?;
    let job = Job::SendRecoveryEmails {
        session_id: session.id,
    };
    jobs::queue(&mut tx, clock, &mut rng, &job).await?;
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user_recovery_session.id = %session.id, "password recovery requested");
    Ok(())
}

/// A plausible address: one `@` with something on both sides, no spaces, not too long. The
/// real test is whether a verified address of an account equals it.
fn looks_like_an_address(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests;
