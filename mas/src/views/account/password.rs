//! `GET/POST /account/password` (docs/protocol.md#pages): the password change page, linked from
//! the account page (the router sends `/.well-known/change-password` here, per the W3C's "A
//! Well-Known URL for Changing Passwords").
//!
//! POST order: CSRF; the session (none: the login page, which comes back here); whether the
//! account may change its password at all (passwords on, `account.password_change_allowed`,
//! a password to change); the new password (twice, strength); then the current password through
//! the login's own check (`auth::password`, with its rate limits per address and per account).
//! Then, in one transaction, the new hash becomes the active password and, when "Sign out my
//! other sessions" is ticked, every OAuth, compat and other browser session ends with a
//! device sync queued; the browser session the change is made in stays.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use sqlx::AnyConnection;

use crate::app::{AppState, SiteConfig};
use crate::auth::account::AccountRefusal;
use crate::auth::new_password::{HashedPassword, check_new_password};
use crate::auth::password::{PasswordLogin, PasswordRefusal};
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::auth::sessions::{EndedSessions, end_other_sessions};
use crate::crypto::passwords::PasswordManager;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::session::load_session;
use crate::jobs::{self, Job, JobWaker};
use crate::model::{BrowserSession, User};
use crate::pages::{CsrfForm, PageState};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::storage::{Database, StorageError, passwords, upstream_links};
use crate::templates::{FormError, PasswordChangeContext, StrengthView};
use crate::upstream::UpstreamProviders;
use crate::views::notice::notice;
use crate::views::password_form::refusal_view;

/// The parts of the state the page reads besides those of [`PageState`].
#[derive(Debug, Clone)]
pub(in crate::views) struct PasswordChangeState {
    db: Database,
    passwords: Option<Arc<PasswordManager>>,
    limiter: RateLimiter,
    site: Arc<SiteConfig>,
    upstream: UpstreamProviders,
    jobs: JobWaker,
}

impl FromRef<AppState> for PasswordChangeState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
            site: state.site.clone(),
            upstream: state.upstream.clone(),
            jobs: state.jobs.clone(),
        }
    }
}

/// The form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(in crate::views) struct PasswordChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
    /// The checkbox: present (`on`) when ticked.
    sign_out_others: Option<String>,
}

/// Why the account cannot change its password here.
enum Unavailable {
    /// `passwords.enabled: false` (sign-in through the provider only).
    PasswordsOff,
    /// `account.password_change_allowed: false`.
    NotAllowed,
    /// The account has no password; it signs in through these providers.
    NoPassword(Vec<String>),
}

impl Unavailable {
    fn page(&self, page: &PageState) -> Result<Response, HtmlError> {
        let message = match self {
            Self::PasswordsOff => "This server does not use passwords: you sign in through your \
                                  organisation's sign-in service. Change your password there."
                .to_owned(),
            Self::NotAllowed => "Changing your password is not allowed on this server. Contact \
                                 its administrator."
                .to_owned(),
            Self::NoPassword(providers) if providers.is_empty() => {
                "Your account has no password here. Contact the administrator of this server."
                    .to_owned()
            }
            Self::NoPassword(providers) => format!(
                "Your account has no password here: you sign in with {}. Change your password \
                 there.",
                providers.join(", ")
            ),
        };
        let account = (page.urls.relative(routes::ACCOUNT), "Back to your account");
        notice(
            page,
            StatusCode::FORBIDDEN,
            "You cannot change your password here",
            &message,
            Some(account),
        )
    }
}

impl PasswordChangeState {
    /// The password manager, once the account may change its password.
    async fn manager(
        &self,
        conn: &mut AnyConnection,
        user: &User,
    ) -> Result<Result<&PasswordManager, Unavailable>, StorageError> {
        let Some(manager) = self.passwords.as_deref() else {
            return Ok(Err(Unavailable::PasswordsOff));
        };
        if !self.site.account.password_change_allowed {
            return Ok(Err(Unavailable::NotAllowed));
        }
        if passwords::active_password(conn, user.id).await?.is_none() {
            let mut providers = Vec::new();
            for provider in self.upstream.enabled() {
                let links =
                    upstream_links::list_user_upstream_links(conn, user.id, &provider.id).await?;
                if !links.is_empty() {
                    providers.push(provider.display_name().to_owned());
                }
            }
            return Ok(Err(Unavailable::NoPassword(providers)));
        }
        Ok(Ok(manager))
    }
}

/// The form as shown.
#[derive(Default)]
struct FormView {
    errors: Vec<FormError>,
    strength: Option<StrengthView>,
    sign_out_others: bool,
    retry_after: Option<u64>,
}

fn render(
    page: &PageState,
    mut jar: CookieJar,
    status: StatusCode,
    view: FormView,
) -> Result<Response, HtmlError> {
    let context = PasswordChangeContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: page.csrf_token(&mut jar).form_value().to_owned(),
        form_action: page.urls.relative(routes::ACCOUNT_PASSWORD),
        account_url: page.urls.relative(routes::ACCOUNT),
        errors: view.errors,
        strength: view.strength,
        sign_out_others: view.sign_out_others,
    };
    let html = page.templates.render_account_password(&context)?;
    let mut response = (status, jar, Html(html)).into_response();
    if let Some(seconds) = view.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

/// 302 to the login page, which comes back here.
fn to_login(page: &PageState) -> Response {
    let url = login_url(&page.urls, Some(&PostAuthAction::ChangePassword), None);
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// `GET /account/password`.
#[tracing::instrument(name = "handlers.views.account.password.get", skip_all)]
pub(in crate::views) async fn get(
    State(page): State<PageState>,
    State(state): State<PasswordChangeState>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    let mut conn = state.db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        return Ok(to_login(&page));
    };
    if let Err(unavailable) = state.manager(&mut conn, &session.user).await? {
        return unavailable.page(&page);
    }
    drop(conn);
    render(&page, jar, StatusCode::OK, FormView::default())
}

/// `POST /account/password`.
#[tracing::instrument(name = "handlers.views.account.password.post", skip_all)]
pub(in crate::views) async fn post(
    State(page): State<PageState>,
    State(state): State<PasswordChangeState>,
    ClientIp(ip): ClientIp,
    CsrfForm { jar, fields: form }: CsrfForm<PasswordChangeForm>,
) -> Result<Response, HtmlError> {
    let mut conn = state.db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        return Ok(to_login(&page));
    };
    let manager = match state.manager(&mut conn, &session.user).await? {
        Ok(manager) => manager,
        Err(unavailable) => return unavailable.page(&page),
    };
    drop(conn);
    let sign_out_others = form.sign_out_others.is_some();
    if let Err((status, view)) = check(&page, &state, manager, ip, &session.user, &form).await? {
        let view = FormView {
            sign_out_others,
            ..view
        };
        return render(&page, jar, status, view);
    }
    let hashed = HashedPassword::new(manager, &page.rng, &form.new_password)
        .await
        .map_err(HtmlError::internal)?;
    let ended = change(&page, &state, &session, &hashed, sign_out_others).await?;
    tracing::info!(user.id = %session.user.id, sessions.ended = ended.total(), "password changed");
    let mut message = "Your password has been changed.".to_owned();
    if sign_out_others {
        let total = ended.total();
        let noun = if total == 1 { "session" } else { "sessions" };
        message.push_str(&format!(" {total} other {noun} signed out."));
    }
    let account = (page.urls.relative(routes::ACCOUNT), "Back to your account");
    notice(
        &page,
        StatusCode::OK,
        "Password changed",
        &message,
        Some(account),
    )
}

/// The checks of the form, cheap ones first; `Ok(Err(_))` is the form to show again.
async fn check(
    page: &PageState,
    state: &PasswordChangeState,
    manager: &PasswordManager,
    ip: Option<IpAddr>,
    user: &User,
    form: &PasswordChangeForm,
) -> Result<Result<(), (StatusCode, FormView)>, HtmlError> {
    let mut view = FormView::default();
    if form.current_password.is_empty() {
        let error = FormError::field("current_password", "Enter your current password.");
        view.errors.push(error);
    }
    let inputs = [user.username.as_str(), state.site.server_name.as_str()];
    let new = (&form.new_password, &form.new_password_confirm);
    if let Err(refusal) = check_new_password(manager, new.0, new.1, &inputs) {
        let (error, strength) = refusal_view(refusal);
        view.errors.push(error);
        view.strength = strength;
    }
    if !view.errors.is_empty() {
        return Ok(Err((StatusCode::BAD_REQUEST, view)));
    }
    let login = PasswordLogin {
        db: &state.db,
        clock: page.clock.as_ref(),
        limiter: &state.limiter,
        manager,
        rng: &page.rng,
    };
    let (status, error) = match login
        .authenticate(ip, &user.username, &form.current_password)
        .await
    {
        Ok(_) => return Ok(Ok(())),
        Err(PasswordRefusal::RateLimited(limited)) => {
            let seconds = limited.retry_after_secs();
            view.retry_after = Some(seconds);
            let message = format!("Too many attempts. Wait {seconds} seconds and try again.");
            (StatusCode::TOO_MANY_REQUESTS, FormError::form(message))
        }
        Err(PasswordRefusal::InvalidCredentials) => (
            StatusCode::FORBIDDEN,
            FormError::field("current_password", "This is not your current password."),
        ),
        Err(PasswordRefusal::Account(refusal)) => {
            let message = match refusal {
                AccountRefusal::Locked => "This account is locked.",
                AccountRefusal::Deactivated => "This account has been deactivated.",
                AccountRefusal::Guest => "Guest accounts have no password.",
            };
            (StatusCode::FORBIDDEN, FormError::form(message))
        }
        Err(PasswordRefusal::Internal(error)) => return Err(HtmlError::internal(error)),
    };
    view.errors.push(error);
    Ok(Err((status, view)))
}

/// Stores the new password and, when asked, ends the other sessions, in one transaction.
async fn change(
    page: &PageState,
    state: &PasswordChangeState,
    session: &BrowserSession,
    hashed: &HashedPassword,
    sign_out_others: bool,
) -> Result<EndedSessions, HtmlError> {
    let clock = page.clock.as_ref();
    let mut rng = page.rng.fork();
    let user_id = session.user.id;
    let mut tx = state.db.begin_write().await?;
    hashed.store(&mut tx, clock, &mut rng, user_id).await?;
    let mut ended = EndedSessions::default();
    if sign_out_others {
        ended = end_other_sessions(&mut tx, clock, user_id, session.id).await?;
        jobs::queue(&mut tx, clock, &mut rng, &Job::SyncDevices { user_id }).await?;
    }
    tx.commit().await?;
    if sign_out_others {
        state.jobs.wake();
    }
    Ok(ended)
}

#[cfg(test)]
mod tests;
