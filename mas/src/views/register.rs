//! `GET/POST /register` (docs/protocol.md#registration): the registration form. The query (and
//! the form's hidden fields) carry the post-auth action, as on the login page.
//!
//! Closed (`account.password_registration_enabled` off, or passwords off): a 404 page saying
//! so. An email address required while mail is off: a 503 page, never a half-way account.
//!
//! POST order: CSRF; the fields, each refusal next to its field (the username's grammar and
//! Synapse's reserved names, the two passwords, zxcvbn's score with its feedback, the email
//! address, the token, the terms); then whether MAS or the homeserver has the username
//! (application service namespaces included); then the rate limit per address (only forms
//! that passed count); then the password is hashed and the registration stored and bound to
//! this browser. The account itself is created by the last step ([`display_name`]).

pub(super) mod display_name;
#[cfg(test)]
mod tests;
pub(super) mod verify_email;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::app::{AppState, SiteConfig};
use crate::auth::new_password::{Strength, score_in_words};
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::auth::registration::{Availability, RegistrationPolicy, availability, check_localpart};
use crate::clock::Clock;
use crate::crypto::passwords::PasswordManager;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::homeserver::HomeserverConnection;
use crate::model::{EmailAuthenticationPurpose, NewRegistration, RegistrationTokenState};
use crate::pages::{CsrfForm, PageState, bad_query};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::storage::{Database, registrations, users};
use crate::templates::{FormError, RegisterContext, StrengthView};

/// The parts of the state the registration pages read besides those of [`PageState`].
#[derive(Debug, Clone)]
pub(super) struct RegisterState {
    pub(super) db: Database,
    pub(super) site: Arc<SiteConfig>,
    pub(super) passwords: Option<Arc<PasswordManager>>,
    pub(super) limiter: RateLimiter,
    pub(super) homeserver: Arc<dyn HomeserverConnection>,
    pub(super) jobs: crate::jobs::JobWaker,
    pub(super) clock: Arc<dyn Clock>,
    /// Whether mail can be sent (a required email address needs it).
    pub(super) mail_enabled: bool,
}

impl FromRef<AppState> for RegisterState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            site: state.site.clone(),
            passwords: state.passwords.clone(),
            limiter: state.limiter.clone(),
            homeserver: state.homeserver.clone(),
            jobs: state.jobs.clone(),
            clock: state.clock.clone(),
            mail_enabled: state.mailer.is_enabled(),
        }
    }
}

impl RegisterState {
    /// The policy and password manager when registration is open; else the page that says
    /// why not.
    pub(super) fn open(&self) -> Result<(RegistrationPolicy, &PasswordManager), HtmlError> {
        match availability(&self.site, self.passwords.is_some(), self.mail_enabled) {
            Availability::Open(policy) => match self.passwords.as_deref() {
                Some(manager) => Ok((policy, manager)),
                None => Err(closed_page()),
            },
            Availability::Closed => Err(closed_page()),
            Availability::MailUnavailable => Err(HtmlError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Registration is unavailable",
                "Creating an account here needs an email address, and this server cannot send \
                 email at the moment. Please contact the administrator of this server.",
            )),
        }
    }
}

/// The registration `id` of a step's path when this browser started it and it is still in
/// progress; anything else is the same 404 page (a completed registration, or a foreign or
/// unknown id, tells nothing).
pub(super) async fn own_registration(
    state: &RegisterState,
    jar: &CookieJar,
    id: &str,
) -> Result<crate::model::Registration, HtmlError> {
    let not_found = || {
        HtmlError::new(
            StatusCode::NOT_FOUND,
            "Registration not found",
            "This registration does not exist, was finished already, or was started in another              browser. Start again from the registration page.",
        )
    };
    let id: ulid::Ulid = id.parse().map_err(|_| not_found())?;
    if !jar.has_registration(id) {
        return Err(not_found());
    }
    let mut conn = state.db.acquire().await?;
    registrations::find_registration(&mut conn, id)
        .await?
        .filter(|registration| registration.completed_at.is_none())
        .ok_or_else(not_found)
}

/// The page when registration is off.
fn closed_page() -> HtmlError {
    HtmlError::new(
        StatusCode::NOT_FOUND,
        "Registration is closed",
        "This server does not let people create accounts themselves. Ask the administrator of \
         this server for an account.",
    )
}

/// The registration query.
#[derive(Debug, Deserialize)]
pub(super) struct RegisterQuery {
    kind: Option<String>,
    id: Option<String>,
}

/// The registration form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(super) struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    token: String,
    accept_terms: Option<String>,
    kind: Option<String>,
    id: Option<String>,
}

/// A refused attempt, shown on the re-rendered form.
#[derive(Debug, Default)]
struct Refusal {
    errors: Vec<FormError>,
    strength: Option<StrengthView>,
    status: Option<StatusCode>,
    retry_after: Option<u64>,
}

impl Refusal {
    fn field(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FormError::field(name, message));
    }
}

/// Renders the form, with the last attempt's values (never its passwords).
fn render(
    page: &PageState,
    policy: &RegistrationPolicy,
    site: &SiteConfig,
    mut jar: CookieJar,
    action: Option<&PostAuthAction>,
    form: Option<&RegisterForm>,
    refusal: Refusal,
) -> Result<Response, HtmlError> {
    let csrf = page.csrf_token(&mut jar);
    let value = |get: fn(&RegisterForm) -> &str| form.map(get).unwrap_or_default().to_owned();
    let context = RegisterContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page.urls.relative(routes::REGISTER),
        server_name: site.server_name.clone(),
        username: value(|f| f.username.trim()),
        email: value(|f| f.email.trim()),
        token: value(|f| f.token.trim()),
        email_required: policy.email_required,
        token_required: policy.token_required,
        tos_uri: policy.tos_uri.as_ref().map(ToString::to_string),
        strength: refusal.strength,
        errors: refusal.errors,
        post_auth_action: action.map(PostAuthAction::view),
        login_url: login_url(&page.urls, action, None),
    };
    let html = page.templates.render_register(&context)?;
    let status = match refusal.status {
        Some(status) => status,
        None if context.errors.is_empty() => StatusCode::OK,
        None => StatusCode::BAD_REQUEST,
    };
    let mut response = (status, jar, Html(html)).into_response();
    if let Some(seconds) = refusal.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

/// `GET /register`.
#[tracing::instrument(name = "handlers.views.register.get", skip_all)]
pub(super) async fn get(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    jar: CookieJar,
    query: Result<StrictQuery<RegisterQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    let (policy, _) = state.open()?;
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let action = PostAuthAction::from_fields(query.kind.as_deref(), query.id.as_deref());
    let refusal = Refusal::default();
    render(
        &page,
        &policy,
        &state.site,
        jar,
        action.as_ref(),
        None,
        refusal,
    )
}

/// `POST /register`.
#[tracing::instrument(name = "handlers.views.register.post", skip_all)]
pub(super) async fn post(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm {
        mut jar,
        fields: form,
    }: CsrfForm<RegisterForm>,
) -> Result<Response, HtmlError> {
    let (policy, manager) = state.open()?;
    let action = PostAuthAction::from_fields(form.kind.as_deref(), form.id.as_deref());
    let checked = match check(&state, &policy, manager, &form).await? {
        Ok(checked) => checked,
        Err(refusal) => {
            return render(
                &page,
                &policy,
                &state.site,
                jar,
                action.as_ref(),
                Some(&form),
                refusal,
            );
        }
    };
    let now = page.clock.now_unix_ms();
    if let Err(limited) = state.limiter.check_registration(ip, now) {
        let seconds = limited.retry_after_secs();
        tracing::info!(client.ip = ?ip, "registration refused: too many from this address");
        let refusal = Refusal {
            errors: vec![FormError::form(format!(
                "Too many accounts were created from your network. Wait {seconds} seconds and \
                 try again."
            ))],
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            retry_after: Some(seconds),
            strength: None,
        };
        return render(
            &page,
            &policy,
            &state.site,
            jar,
            action.as_ref(),
            Some(&form),
            refusal,
        );
    }
    let mut rng = page.rng.fork();
    let (version, hash) = manager
        .hash(&mut rng, &form.password)
        .await
        .map_err(HtmlError::internal)?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let new = NewRegistration {
        username: checked.username,
        email: checked.email,
        hashed_password: hash,
        hashed_password_version: version,
        terms_url: policy.tos_uri.as_ref().map(ToString::to_string),
        registration_token_id: checked.token_id,
        post_auth_action: action.as_ref().map(PostAuthAction::to_json),
        ip_address: ip.map(|ip| ip.to_string()),
        user_agent,
    };
    let clock = page.clock.as_ref();
    let mut tx = state.db.begin_write().await?;
    let registration = registrations::add_registration(&mut tx, clock, &mut rng, new).await?;
    if let Some(email) = &registration.new.email {
        let purpose = EmailAuthenticationPurpose::Registration {
            registration_id: registration.id,
        };
        crate::auth::email::start(&mut tx, clock, &mut rng, purpose, email).await?;
    }
    tx.commit().await?;
    state.jobs.wake();
    tracing::info!(user_registration.id = %registration.id, "registration started");
    jar.add_registration(&mut rng, registration.id)
        .map_err(HtmlError::internal)?;
    let next = if registration.needs_email_verification() {
        routes::register_verify_email(registration.id)
    } else {
        routes::register_display_name(registration.id)
    };
    Ok((jar, Redirect::to(&page.urls.relative(&next))).into_response())
}

/// What a form that passed every check stores.
struct Checked {
    username: String,
    email: Option<String>,
    token_id: Option<ulid::Ulid>,
}

/// The checks of the module documentation, short of the rate limit; `Ok(Err(_))` is a
/// refusal to show on the form.
async fn check(
    state: &RegisterState,
    policy: &RegistrationPolicy,
    manager: &PasswordManager,
    form: &RegisterForm,
) -> Result<Result<Checked, Refusal>, HtmlError> {
    let mut refusal = Refusal::default();
    let username = form.username.trim();
    let username_ok = match check_localpart(username, &state.site.server_name) {
        Ok(()) => true,
        Err(problem) => {
            refusal.field("username", problem.message());
            false
        }
    };
    check_passwords(manager, username, form, &mut refusal);
    let email = check_email(policy, form, &mut refusal);
    let token_id = check_token(state, policy, form, &mut refusal).await?;
    if policy.tos_uri.is_some() && form.accept_terms.as_deref() != Some("on") {
        refusal.field("accept_terms", "Accept the terms of service to continue.");
    }
    if username_ok && let Err(problem) = check_available(state, username).await? {
        match problem {
            Unavailable::Taken => {
                refusal.field("username", "This username is taken. Choose another one.")
            }
            Unavailable::NotChecked => {
                refusal.errors.push(FormError::form(
                    "The username could not be checked at the moment. Try again in a minute.",
                ));
                refusal.status = Some(StatusCode::SERVICE_UNAVAILABLE);
            }
        }
    }
    if !refusal.errors.is_empty() {
        return Ok(Err(refusal));
    }
    Ok(Ok(Checked {
        username: username.to_owned(),
        email,
        token_id,
    }))
}

/// The password, the strength meter (with the username as a guessable input) and the
/// confirmation.
fn check_passwords(
    manager: &PasswordManager,
    username: &str,
    form: &RegisterForm,
    refusal: &mut Refusal,
) {
    if form.password.is_empty() {
        refusal.field("password", "Choose a password.");
    } else {
        let strength = Strength::of(&form.password, &[username]);
        if strength.score < manager.minimum_complexity() {
            refusal.field(
                "password",
                format!(
                    "This password is too easy to guess ({}). Choose a longer or less common \
                     one.",
                    score_in_words(strength.score)
                ),
            );
            let minimum = manager.minimum_complexity();
            refusal.strength = Some(super::password_form::strength_view(strength, minimum));
        }
    }
    let same: bool = form
        .password
        .as_bytes()
        .ct_eq(form.password_confirm.as_bytes())
        .into();
    if !same {
        refusal.field("password_confirm", "The two passwords do not match.");
    }
}

/// The email address, when required.
fn check_email(
    policy: &RegistrationPolicy,
    form: &RegisterForm,
    refusal: &mut Refusal,
) -> Option<String> {
    if !policy.email_required {
        return None;
    }
    let email = form.email.trim();
    if email.is_empty() {
        refusal.field("email", "Enter your email address.");
        return None;
    }
    if !crate::auth::registration::plausible_email(email) {
        refusal.field("email", "Enter an email address like name@example.com.");
        return None;
    }
    Some(email.to_owned())
}

/// The registration token, when required: it must exist and be usable now (it is consumed
/// only when the account is created).
async fn check_token(
    state: &RegisterState,
    policy: &RegistrationPolicy,
    form: &RegisterForm,
    refusal: &mut Refusal,
) -> Result<Option<ulid::Ulid>, HtmlError> {
    if !policy.token_required {
        return Ok(None);
    }
    let token = form.token.trim();
    if token.is_empty() {
        refusal.field("token", "Enter the registration token.");
        return Ok(None);
    }
    let mut conn = state.db.acquire().await?;
    let found = registrations::find_registration_token_by_token(&mut conn, token).await?;
    let now = state.clock.now_unix_ms();
    match found {
        Some(found) if found.state(now) == RegistrationTokenState::Active => Ok(Some(found.id)),
        _ => {
            refusal.field(
                "token",
                "This registration token is not valid: it may be mistyped, used up or expired.",
            );
            Ok(None)
        }
    }
}

/// Why a valid username cannot be taken.
enum Unavailable {
    /// MAS or the homeserver has it (or it is in an application service's namespace).
    Taken,
    /// The homeserver did not answer.
    NotChecked,
}

/// Whether MAS and the homeserver leave `username` free.
async fn check_available(
    state: &RegisterState,
    username: &str,
) -> Result<Result<(), Unavailable>, HtmlError> {
    let mut conn = state.db.acquire().await?;
    if users::find_user_by_username(&mut conn, username)
        .await?
        .is_some()
    {
        return Ok(Err(Unavailable::Taken));
    }
    drop(conn);
    match state.homeserver.is_localpart_available(username).await {
        Ok(true) => Ok(Ok(())),
        Ok(false) => Ok(Err(Unavailable::Taken)),
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "registration: the homeserver did not say whether the username is free"
            );
            Ok(Err(Unavailable::NotChecked))
        }
    }
}
