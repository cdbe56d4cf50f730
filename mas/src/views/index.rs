//! `GET /`: the index (docs/protocol.md#pages): the signed-in user with a logout form, or a link to
//! the login page.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::pages::{PageState, user_view};
use crate::routes;
use crate::storage::Database;
use crate::templates::IndexContext;

/// `GET /`.
#[tracing::instrument(name = "handlers.views.index.get", skip_all)]
pub(super) async fn get(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(homeserver): State<Arc<dyn HomeserverConnection>>,
    mut jar: CookieJar,
) -> Result<Response, HtmlError> {
    let mut conn = db.acquire().await?;
    let session = load_session(&mut conn, &jar).await?;
    drop(conn);
    let user = match &session {
        Some(session) => Some(user_view(homeserver.as_ref(), &session.user).await),
        None => None,
    };
    let csrf = page.csrf_token(&mut jar);
    let context = IndexContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        user,
        logout_action: page.urls.relative(routes::LOGOUT),
        login_url: page.urls.relative(routes::LOGIN),
    };
    let html = page.templates.render_index(&context)?;
    Ok((jar, Html(html)).into_response())
}
