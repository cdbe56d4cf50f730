//! `GET/POST /login` (docs/protocol.md#pages, #passwords, #rate-limits): the username/password
//! form. The query (and the form's hidden fields) carry the post-auth action.
//!
//! POST order: CSRF; rate limits per IP and then per account, before any password is looked
//! at; the password (hash upgraded on success); then the account state, so that whether an
//! account is locked is only told to someone who knows its password. An unknown username, or
//! an account without a password, still costs one verification (against a dummy hash), so
//! the answer time does not tell which usernames exist. A success starts a
//! browser session (or re-authenticates the current one of the same user), records the
//! authentication (the ID token's `auth_time`) and continues the post-auth action.
//!
//! The page also shows one button per upstream provider (`/upstream/authorize/{id}` with the
//! post-auth action). In SSO-only mode (passwords disabled, exactly one provider) `GET` answers
//! 302 straight to that provider instead of a page with a single button.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::app::{AppState, SiteConfig};
use crate::auth::account::AccountRefusal;
use crate::auth::password::{
    Authenticated, LoginIdentifier, PasswordLogin, PasswordRefusal, localpart_of,
};
use crate::auth::post_auth::{
    PostAuthAction, needs_fresh_login, register_url, upstream_authorize_url,
};
use crate::auth::registration::RegistrationOpen;
use crate::crypto::passwords::PasswordManager;
use crate::email::Mailer;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::extract::session::load_session;
use crate::model::{AuthenticationMethod, BrowserSession};
use crate::pages::{CsrfForm, PageState, bad_query};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::storage::{Database, browser_sessions, grants};
use crate::templates::{FormError, LoginContext, ProviderLink};
use crate::upstream::UpstreamProviders;
use crate::views::recover::recovery_available;

/// The parts of the state the login page reads besides those of [`PageState`].
#[derive(Debug, Clone)]
pub(super) struct LoginState {
    db: Database,
    site: Arc<SiteConfig>,
    passwords: Option<Arc<PasswordManager>>,
    limiter: RateLimiter,
    upstream: UpstreamProviders,
    mailer: Arc<Mailer>,
    registration: RegistrationOpen,
}

impl FromRef<AppState> for LoginState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            site: state.site.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
            upstream: state.upstream.clone(),
            mailer: state.mailer.clone(),
            registration: RegistrationOpen::from_ref(state),
        }
    }
}

impl LoginState {
    /// The handles of a password login; `None` when password login is disabled.
    fn password_login<'a>(&'a self, page: &'a PageState) -> Option<PasswordLogin<'a>> {
        Some(PasswordLogin {
            db: &self.db,
            clock: page.clock.as_ref(),
            limiter: &self.limiter,
            manager: self.passwords.as_deref()?,
            rng: &page.rng,
        })
    }
}

/// The login query.
#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    kind: Option<String>,
    id: Option<String>,
    login_hint: Option<String>,
}

/// The login form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    kind: Option<String>,
    id: Option<String>,
}

/// What went wrong with an attempt, shown on the re-rendered form.
struct Refusal {
    status: StatusCode,
    errors: Vec<FormError>,
    /// `Retry-After` in seconds, when a rate limit refused the attempt (RFC 6585 §4).
    retry_after: Option<u64>,
}

impl Refusal {
    fn form(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![FormError::form(message)],
            retry_after: None,
        }
    }

    /// The form's text for a refused password; an internal error is a 500 page instead.
    fn from_password(refusal: PasswordRefusal) -> Result<Self, HtmlError> {
        let message = match refusal {
            PasswordRefusal::RateLimited(limited) => {
                let seconds = limited.retry_after_secs();
                return Ok(Self {
                    retry_after: Some(seconds),
                    ..Self::form(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("Too many sign-in attempts. Wait {seconds} seconds and try again."),
                    )
                });
            }
            PasswordRefusal::Internal(error) => return Err(HtmlError::internal(error)),
            PasswordRefusal::InvalidCredentials => "Invalid username or password.",
            PasswordRefusal::Account(AccountRefusal::Deactivated) => {
                "This account has been deactivated."
            }
            PasswordRefusal::Account(AccountRefusal::Locked) => {
                "This account is locked. Contact the administrator of this server."
            }
            PasswordRefusal::Account(AccountRefusal::Guest) => {
                "Guest accounts cannot sign in here."
            }
        };
        Ok(Self::form(StatusCode::FORBIDDEN, message))
    }
}

/// Renders the login page.
fn render(
    page: &PageState,
    login: &LoginState,
    mut jar: CookieJar,
    action: Option<&PostAuthAction>,
    username: String,
    refusal: Option<Refusal>,
) -> Result<Response, HtmlError> {
    let csrf = page.csrf_token(&mut jar);
    let (status, errors, retry_after) = refusal.map_or((StatusCode::OK, Vec::new(), None), |r| {
        (r.status, r.errors, r.retry_after)
    });
    let login_hint = (!username.is_empty()).then_some(username.as_str());
    let providers = login
        .upstream
        .enabled()
        .iter()
        .map(|provider| ProviderLink {
            name: provider.display_name().to_owned(),
            url: upstream_authorize_url(&page.urls, &provider.id, action, login_hint),
        })
        .collect();
    let context = LoginContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(routes::LOGIN),
        password_enabled: login.passwords.is_some(),
        email_allowed: login.site.account.login_with_email_allowed,
        username,
        errors,
        providers,
        post_auth_action: action.map(PostAuthAction::view),
        recovery_url: recovery_available(&login.site, login.passwords.as_deref(), &login.mailer)
            .then(|| page.urls.relative(routes::RECOVER)),
        register_url: login
            .registration
            .0
            .then(|| register_url(&page.urls, action)),
    };
    let html = page.templates.render_login(&context)?;
    let mut response = (status, jar, Html(html)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

/// Whether `session` must log in again before `action` (a grant with `prompt=login` that is
/// newer than the session's last authentication).
async fn must_reauthenticate(
    db: &Database,
    session: &BrowserSession,
    action: Option<&PostAuthAction>,
) -> Result<bool, HtmlError> {
    let Some(PostAuthAction::ContinueAuthorizationGrant { id }) = action else {
        return Ok(false);
    };
    let mut conn = db.acquire().await?;
    let Some(grant) = grants::find_authorization_grant(&mut conn, *id).await? else {
        return Ok(false);
    };
    needs_fresh_login(&mut conn, session, &grant)
        .await
        .map_err(HtmlError::internal)
}

/// `GET /login`.
#[tracing::instrument(name = "handlers.views.login.get", skip_all)]
pub(super) async fn get(
    State(page): State<PageState>,
    State(login): State<LoginState>,
    jar: CookieJar,
    query: Result<StrictQuery<LoginQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let action = PostAuthAction::from_fields(query.kind.as_deref(), query.id.as_deref());
    let mut conn = login.db.acquire().await?;
    let session = load_session(&mut conn, &jar).await?;
    drop(conn);
    let mut username = query
        .login_hint
        .as_deref()
        .map(|hint| localpart_of(hint, &login.site.server_name).to_owned())
        .unwrap_or_default();
    if let Some(session) = session {
        if !must_reauthenticate(&login.db, &session, action.as_ref()).await? {
            let destination = PostAuthAction::destination(action.as_ref(), &page.urls);
            return Ok(Redirect::to(&destination).into_response());
        }
        username = session.user.username;
    }
    let hint = query.login_hint.as_deref();
    if let Some(url) = sso_only_redirect(&login, &page.urls, action.as_ref(), hint) {
        return Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response());
    }
    render(&page, &login, jar, action.as_ref(), username, None)
}

/// SSO-only mode (issue 5): with password login off and exactly one provider the page would
/// show nothing but its button, so the browser goes straight to the provider.
fn sso_only_redirect(
    login: &LoginState,
    urls: &crate::routes::UrlBuilder,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> Option<String> {
    if login.passwords.is_some() {
        return None;
    }
    let [provider] = login.upstream.enabled() else {
        return None;
    };
    Some(upstream_authorize_url(
        urls,
        &provider.id,
        action,
        login_hint,
    ))
}

/// `POST /login`.
#[tracing::instrument(name = "handlers.views.login.post", skip_all)]
pub(super) async fn post(
    State(page): State<PageState>,
    State(login): State<LoginState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    CsrfForm { jar, fields: form }: CsrfForm<LoginForm>,
) -> Result<Response, HtmlError> {
    let action = PostAuthAction::from_fields(form.kind.as_deref(), form.id.as_deref());
    let email_allowed = login.site.account.login_with_email_allowed;
    let identifier = LoginIdentifier::parse(&form.username, &login.site.server_name, email_allowed);
    let username = match identifier {
        LoginIdentifier::Username(username) | LoginIdentifier::Email(username) => {
            username.to_owned()
        }
    };
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match attempt(&page, &login, ip, identifier, &form.password).await? {
        Err(refusal) => render(&page, &login, jar, action.as_ref(), username, Some(refusal)),
        Ok(authenticated) => {
            finish_login(&page, &login.db, jar, action, authenticated, user_agent, ip).await
        }
    }
}

/// The checks of a login attempt; `Ok(Err(_))` is a refusal to show on the form.
async fn attempt(
    page: &PageState,
    login: &LoginState,
    ip: Option<std::net::IpAddr>,
    identifier: LoginIdentifier<'_>,
    password: &str,
) -> Result<Result<Authenticated, Refusal>, HtmlError> {
    let email_allowed = login.site.account.login_with_email_allowed;
    let Some(login) = login.password_login(page) else {
        return Ok(Err(Refusal::form(
            StatusCode::FORBIDDEN,
            "Signing in with a password is not enabled on this server.",
        )));
    };
    let mut missing = Vec::new();
    if matches!(identifier, LoginIdentifier::Username("")) {
        let message = if email_allowed {
            "Enter your username or email address."
        } else {
            "Enter your username."
        };
        missing.push(FormError::field("username", message));
    }
    if password.is_empty() {
        missing.push(FormError::field("password", "Enter your password."));
    }
    if !missing.is_empty() {
        return Ok(Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            errors: missing,
            retry_after: None,
        }));
    }
    match login.authenticate_as(ip, identifier, password).await {
        Ok(authenticated) => Ok(Ok(authenticated)),
        Err(refusal) => Refusal::from_password(refusal).map(Err),
    }
}

/// Stores the upgraded hash, starts (or re-authenticates) the browser session, records the
/// authentication, sets the cookie and continues.
async fn finish_login(
    page: &PageState,
    db: &Database,
    mut jar: CookieJar,
    action: Option<PostAuthAction>,
    authenticated: Authenticated,
    user_agent: Option<String>,
    ip: Option<std::net::IpAddr>,
) -> Result<Response, HtmlError> {
    let clock = page.clock.as_ref();
    let mut rng = page.rng.fork();
    let mut tx = db.begin_write().await?;
    let password_id = authenticated
        .store_upgrade(&mut tx, clock, &mut rng)
        .await?;
    let user = authenticated.user;
    let current = load_session(&mut tx, &jar).await?;
    let session = match current {
        Some(session) if session.user.id == user.id => session,
        _ => {
            let ip = ip.map(|ip| ip.to_string());
            browser_sessions::start_browser_session(
                &mut tx,
                clock,
                &mut rng,
                &user,
                user_agent.as_deref(),
                ip.as_deref(),
            )
            .await?
        }
    };
    browser_sessions::record_authentication(
        &mut tx,
        clock,
        &mut rng,
        session.id,
        AuthenticationMethod::Password {
            user_password_id: password_id,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user.id = %user.id, user_session.id = %session.id, "logged in");
    jar.set_session(&mut rng, session.id)
        .map_err(HtmlError::internal)?;
    let destination = PostAuthAction::destination(action.as_ref(), &page.urls);
    Ok((jar, Redirect::to(&destination)).into_response())
}
