//! `POST /logout` (docs/protocol.md#pages): ends the browser session (CSRF-protected) and goes back
//! to the index. The OAuth sessions started from it live on (as upstream): logging out of the web
//! pages does not sign the user's apps out.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::auth::sessions::end_browser_session;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::pages::{CsrfForm, bad_form, csrf_failed};
use crate::routes;

/// `POST /logout`.
#[tracing::instrument(name = "handlers.views.logout.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    mut jar: CookieJar,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, HtmlError> {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection))?;
    jar.verify_csrf(state.clock.as_ref(), &form.csrf)
        .map_err(csrf_failed)?;
    if let Some(id) = jar.session_id() {
        let mut conn = state.db.acquire().await?;
        end_browser_session(&mut conn, state.clock.as_ref(), id).await?;
    }
    jar.clear_session();
    Ok((jar, Redirect::to(&state.urls.relative(routes::INDEX))).into_response())
}
