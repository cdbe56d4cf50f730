//! `GET /`: the index (docs/protocol.md#pages): the signed-in user with a logout form, or a link to
//! the login page.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::pages::user_view;
use crate::routes;
use crate::templates::IndexContext;

/// `GET /`.
#[tracing::instrument(name = "handlers.views.index.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    mut jar: CookieJar,
) -> Result<Response, HtmlError> {
    let mut conn = state.db.acquire().await?;
    let session = load_session(&mut conn, &jar).await?;
    drop(conn);
    let user = match &session {
        Some(session) => Some(user_view(&state, &session.user).await),
        None => None,
    };
    let mut rng = state.rng.fork();
    let csrf = jar.csrf_token(state.clock.as_ref(), &mut rng);
    let context = IndexContext {
        prefix: state.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        user,
        logout_action: state.urls.relative(routes::LOGOUT),
        login_url: state.urls.relative(routes::LOGIN),
    };
    let html = state.templates.render_index(&context)?;
    Ok((jar, Html(html)).into_response())
}
