//! `POST /logout` (docs/protocol.md#pages): ends the browser session (CSRF-protected) and goes back
//! to the index. The OAuth sessions started from it live on (as upstream): logging out of the web
//! pages does not sign the user's apps out.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::sessions::end_browser_session;
use crate::clock::Clock;
use crate::error::HtmlError;
use crate::pages::CsrfForm;
use crate::routes::{self, UrlBuilder};
use crate::storage::Database;

/// `POST /logout`.
#[tracing::instrument(name = "handlers.views.logout.post", skip_all)]
pub(super) async fn post(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(urls): State<UrlBuilder>,
    CsrfForm { mut jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    if let Some(id) = jar.session_id() {
        let mut conn = db.acquire().await?;
        end_browser_session(&mut conn, clock.as_ref(), id).await?;
    }
    jar.clear_session();
    Ok((jar, Redirect::to(&urls.relative(routes::INDEX))).into_response())
}
