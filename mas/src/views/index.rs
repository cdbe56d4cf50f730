//! `GET /`: the index (docs/protocol.md#pages): the signed-in user with a logout form, or a link to
//! the login page.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::homeserver::CONSENT_QUERY_TIMEOUT;
use crate::model::User;
use crate::routes;
use crate::templates::{IndexContext, UserView};

/// The user as pages show them: the display name from the homeserver (within
/// [`CONSENT_QUERY_TIMEOUT`]), falling back to the username when the homeserver does not answer
/// or has none.
pub(crate) async fn user_view(state: &AppState, user: &User) -> UserView {
    let homeserver = &state.homeserver;
    // The client bounds the call; the outer limit guards against one that does not.
    let query = homeserver.query_user(&user.username, CONSENT_QUERY_TIMEOUT);
    let display_name = match tokio::time::timeout(CONSENT_QUERY_TIMEOUT * 2, query).await {
        Ok(Ok(Some(profile))) => profile.display_name,
        Ok(Ok(None)) => None,
        Err(_) => {
            tracing::warn!(user.id = %user.id, "display name query timed out; showing the username");
            None
        }
        Ok(Err(error)) => {
            tracing::warn!(
                user.id = %user.id,
                error = &error as &dyn std::error::Error,
                "cannot fetch the display name; showing the username"
            );
            None
        }
    };
    UserView {
        mxid: homeserver.mxid(&user.username),
        display_name: Some(display_name.unwrap_or_else(|| user.username.clone())),
    }
}

/// `GET /`.
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
