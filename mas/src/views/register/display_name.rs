//! `GET/POST /register/{registration_id}/display-name` (docs/protocol.md#registration): the
//! optional display name, then the account is created ([`finish`]): the token consumed, the
//! user, password, verified email and browser session created and the provisioning queued,
//! in one transaction; then the session cookie and the post-auth action's destination (the
//! account page without one).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{RegisterState, own_registration};
use crate::auth::post_auth::PostAuthAction;
use crate::auth::registration::{FinishRefusal, finish};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::model::Registration;
use crate::pages::{CsrfForm, PageState};
use crate::routes;
use crate::storage::registrations;
use crate::templates::{FormError, RegisterDisplayNameContext};

/// The longest display name accepted, in characters (Synapse's limit is 256).
const MAX_DISPLAY_NAME: usize = 256;

/// The form (besides its CSRF token): `action` is `set` or `skip`.
#[derive(Debug, Deserialize)]
pub(in crate::views) struct DisplayNameForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    display_name: String,
}

fn render(
    page: &PageState,
    state: &RegisterState,
    mut jar: CookieJar,
    registration: &Registration,
    display_name: String,
    errors: Vec<FormError>,
) -> Result<Response, HtmlError> {
    let csrf = page.csrf_token(&mut jar);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let context = RegisterDisplayNameContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        form_action: page
            .urls
            .relative(&routes::register_display_name(registration.id)),
        mxid: format!("@{}:{}", registration.new.username, state.site.server_name),
        display_name,
        errors,
    };
    let html = page.templates.render_register_display_name(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// The code page, while the address is not verified.
fn verify_first(page: &PageState, registration: &Registration) -> Option<Response> {
    registration.needs_email_verification().then(|| {
        let path = routes::register_verify_email(registration.id);
        Redirect::to(&page.urls.relative(&path)).into_response()
    })
}

/// `GET /register/{registration_id}/display-name`.
#[tracing::instrument(name = "handlers.views.register.display_name.get", skip_all)]
pub(in crate::views) async fn get(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    Path(id): Path<String>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    state.open()?;
    let registration = own_registration(&state, &jar, &id).await?;
    if let Some(redirect) = verify_first(&page, &registration) {
        return Ok(redirect);
    }
    let name = registration.display_name.clone().unwrap_or_default();
    render(&page, &state, jar, &registration, name, Vec::new())
}

/// `POST /register/{registration_id}/display-name`.
#[tracing::instrument(name = "handlers.views.register.display_name.post", skip_all)]
pub(in crate::views) async fn post(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    Path(id): Path<String>,
    CsrfForm {
        mut jar,
        fields: form,
    }: CsrfForm<DisplayNameForm>,
) -> Result<Response, HtmlError> {
    state.open()?;
    let registration = own_registration(&state, &jar, &id).await?;
    if let Some(redirect) = verify_first(&page, &registration) {
        return Ok(redirect);
    }
    let name = form.display_name.trim();
    let display_name = if form.action == "skip" || name.is_empty() {
        None
    } else if name.chars().count() > MAX_DISPLAY_NAME {
        let error = FormError::field(
            "display_name",
            format!("A display name can be at most {MAX_DISPLAY_NAME} characters long."),
        );
        return render(
            &page,
            &state,
            jar,
            &registration,
            name.to_owned(),
            vec![error],
        );
    } else if name.chars().any(char::is_control) {
        let error = FormError::field(
            "display_name",
            "A display name cannot hold control characters.",
        );
        return render(
            &page,
            &state,
            jar,
            &registration,
            name.to_owned(),
            vec![error],
        );
    } else {
        Some(name)
    };
    let mut conn = state.db.acquire().await?;
    registrations::set_registration_display_name(&mut conn, registration.id, display_name).await?;
    drop(conn);

    let mut rng = page.rng.fork();
    let finished = finish(&state.db, page.clock.as_ref(), &mut rng, registration.id)
        .await
        .map_err(refusal_page)?;
    state.jobs.wake();
    jar.set_session(&mut rng, finished.session.id)
        .map_err(HtmlError::internal)?;
    jar.remove_registration(&mut rng, registration.id)
        .map_err(HtmlError::internal)?;
    let action = finished
        .registration
        .new
        .post_auth_action
        .as_ref()
        .and_then(PostAuthAction::from_json);
    let destination = match action {
        Some(action) => PostAuthAction::destination(Some(&action), &page.urls),
        None => page.urls.relative(routes::ACCOUNT),
    };
    Ok((jar, Redirect::to(&destination)).into_response())
}

/// The page for a registration that could not be finished; nothing was created.
fn refusal_page(refusal: FinishRefusal) -> HtmlError {
    match refusal {
        FinishRefusal::NotInProgress | FinishRefusal::EmailNotVerified => HtmlError::new(
            StatusCode::NOT_FOUND,
            "Registration not found",
            "This registration does not exist or was finished already. Start again from the \
             registration page.",
        ),
        FinishRefusal::TokenUnusable => HtmlError::new(
            StatusCode::FORBIDDEN,
            "The registration token is no longer valid",
            "The registration token was used up, revoked or expired while you were registering, \
             so no account was created. Ask the administrator of this server for a new token \
             and start again.",
        ),
        FinishRefusal::UsernameTaken => HtmlError::new(
            StatusCode::CONFLICT,
            "This username was taken",
            "Someone took this username while you were registering, so no account was created. \
             Start again from the registration page with another username.",
        ),
        FinishRefusal::Internal(error) => HtmlError::internal(error),
    }
}
