//! `POST /account/cross-signing-reset` (MSC4191's `org.matrix.cross_signing_reset` deep link;
//! docs/protocol.md#pages): asks the homeserver to let the user replace their cross-signing keys
//! without interactive auth for the next 10 minutes, then says so. A refusal or an unreachable
//! homeserver is an error page (502), never a 500.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::to_login;
use crate::app::AppState;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::pages::{CsrfForm, bad_form, csrf_failed, user_view};
use crate::routes;
use crate::templates::CrossSigningResetContext;

/// `POST /account/cross-signing-reset`.
#[tracing::instrument(name = "handlers.views.account.cross_signing_reset.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    mut jar: CookieJar,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, HtmlError> {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection))?;
    jar.verify_csrf(state.clock.as_ref(), &form.csrf)
        .map_err(csrf_failed)?;
    let mut conn = state.db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        let action = Some("org.matrix.cross_signing_reset".to_owned());
        return Ok(to_login(&state.urls, action, None));
    };
    drop(conn);
    let user = session.user;
    if let Err(error) = state
        .homeserver
        .allow_cross_signing_reset(&user.username)
        .await
    {
        tracing::warn!(
            user.id = %user.id,
            error = &error as &dyn std::error::Error,
            "the homeserver did not allow the cross-signing reset"
        );
        return Err(HtmlError::new(
            StatusCode::BAD_GATEWAY,
            "Identity reset not available",
            "The homeserver did not accept the request. Try again in a few minutes.",
        ));
    }
    tracing::info!(user.id = %user.id, "cross-signing reset allowed for 10 minutes");
    let mut rng = state.rng.fork();
    let csrf = jar.csrf_token(state.clock.as_ref(), &mut rng);
    let context = CrossSigningResetContext {
        prefix: state.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        user: user_view(&state, &user).await,
        form_action: state.urls.relative(routes::ACCOUNT_CROSS_SIGNING_RESET),
        allowed: true,
        account_url: state.urls.relative(routes::ACCOUNT),
    };
    let html = state
        .templates
        .render_account_cross_signing_reset(&context)?;
    Ok((jar, Html(html)).into_response())
}
