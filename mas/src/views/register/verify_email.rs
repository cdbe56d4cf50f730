//! `GET/POST /register/{registration_id}/verify-email` and `POST …/verify-email/resend`
//! (docs/protocol.md#registration, #email-verification): the shared code page for the
//! registration's address. The right code marks the address verified (one transaction) and
//! leads to the display-name step; a wrong, expired or used-up code is said next to the field;
//! "send a new code" mails another (rate-limited per registration).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{RegisterState, own_registration};
use crate::auth::email::{code_problem, start};
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::model::{EmailAuthenticationPurpose, Registration};
use crate::pages::{CsrfForm, NoFields, PageState};
use crate::routes;
use crate::storage::email_authentications::{check_email_code, latest_for_registration};
use crate::storage::registrations;
use crate::templates::{EmailVerifyContext, FormError};

/// The code form (besides its CSRF token).
#[derive(Debug, Deserialize)]
pub(in crate::views) struct CodeForm {
    #[serde(default)]
    code: String,
}

fn render(
    page: &PageState,
    mut jar: CookieJar,
    registration: &Registration,
    status: StatusCode,
    notice: Option<String>,
    errors: Vec<FormError>,
) -> Result<Response, HtmlError> {
    let csrf = page.csrf_token(&mut jar);
    let context = EmailVerifyContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        heading: "Verify your email".to_owned(),
        email: registration.new.email.clone().unwrap_or_default(),
        form_action: page
            .urls
            .relative(&routes::register_verify_email(registration.id)),
        resend_action: Some(
            page.urls
                .relative(&routes::register_verify_email_resend(registration.id)),
        ),
        back: Some((
            "Start again with another address".to_owned(),
            page.urls.relative(routes::REGISTER),
        )),
        notice,
        errors,
    };
    let html = page.templates.render_email_verify(&context)?;
    Ok((status, jar, Html(html)).into_response())
}

/// The next step once the address is verified (or none is needed).
fn display_name_step(page: &PageState, registration: &Registration) -> Response {
    let path = routes::register_display_name(registration.id);
    Redirect::to(&page.urls.relative(&path)).into_response()
}

/// `GET /register/{registration_id}/verify-email`.
#[tracing::instrument(name = "handlers.views.register.verify_email.get", skip_all)]
pub(in crate::views) async fn get(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    Path(id): Path<String>,
    jar: CookieJar,
) -> Result<Response, HtmlError> {
    state.open()?;
    let registration = own_registration(&state, &jar, &id).await?;
    if !registration.needs_email_verification() {
        return Ok(display_name_step(&page, &registration));
    }
    render(&page, jar, &registration, StatusCode::OK, None, Vec::new())
}

/// `POST /register/{registration_id}/verify-email`.
#[tracing::instrument(name = "handlers.views.register.verify_email.post", skip_all)]
pub(in crate::views) async fn post(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    Path(id): Path<String>,
    CsrfForm { jar, fields: form }: CsrfForm<CodeForm>,
) -> Result<Response, HtmlError> {
    state.open()?;
    let registration = own_registration(&state, &jar, &id).await?;
    if !registration.needs_email_verification() {
        return Ok(display_name_step(&page, &registration));
    }
    if form.code.trim().is_empty() {
        let error = FormError::field("code", "Enter the code from the email.");
        return render(
            &page,
            jar,
            &registration,
            StatusCode::BAD_REQUEST,
            None,
            vec![error],
        );
    }
    let clock = page.clock.as_ref();
    let mut tx = state.db.begin_write().await?;
    let Some(authentication) = latest_for_registration(&mut tx, registration.id).await? else {
        return Err(HtmlError::internal(
            "a registration with an email has no code",
        ));
    };
    let check = check_email_code(&mut tx, clock, authentication.id, &form.code).await?;
    if let Some(problem) = code_problem(&check) {
        // The attempt is counted even when refused.
        tx.commit().await?;
        tracing::info!(user_registration.id = %registration.id, "registration code refused");
        return render(
            &page,
            jar,
            &registration,
            StatusCode::BAD_REQUEST,
            None,
            vec![problem],
        );
    }
    registrations::mark_registration_email_verified(&mut tx, clock, registration.id).await?;
    tx.commit().await?;
    tracing::info!(user_registration.id = %registration.id, "registration email verified");
    Ok((jar, display_name_step(&page, &registration)).into_response())
}

/// `POST /register/{registration_id}/verify-email/resend`.
#[tracing::instrument(name = "handlers.views.register.verify_email.resend", skip_all)]
pub(in crate::views) async fn resend(
    State(page): State<PageState>,
    State(state): State<RegisterState>,
    Path(id): Path<String>,
    CsrfForm { jar, .. }: CsrfForm<NoFields>,
) -> Result<Response, HtmlError> {
    state.open()?;
    let registration = own_registration(&state, &jar, &id).await?;
    let Some(email) = registration
        .needs_email_verification()
        .then(|| registration.new.email.clone())
        .flatten()
    else {
        return Ok(display_name_step(&page, &registration));
    };
    let clock = page.clock.as_ref();
    if let Err(limited) = state
        .limiter
        .check_registration_code_resend(registration.id, clock.now_unix_ms())
    {
        let seconds = limited.retry_after_secs();
        let error = FormError::form(format!(
            "A new code was sent recently. Wait {seconds} seconds before asking for another."
        ));
        let status = StatusCode::TOO_MANY_REQUESTS;
        let mut response = render(&page, jar, &registration, status, None, vec![error])?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let purpose = EmailAuthenticationPurpose::Registration {
        registration_id: registration.id,
    };
    let mut tx = state.db.begin_write().await?;
    start(&mut tx, clock, &mut page.rng.fork(), purpose, &email).await?;
    tx.commit().await?;
    state.jobs.wake();
    let notice = Some("A new code is on its way.".to_owned());
    render(
        &page,
        jar,
        &registration,
        StatusCode::OK,
        notice,
        Vec::new(),
    )
}
