//! `POST /account/sessions/{session_id}/end` (docs/protocol.md#pages): signs out one of the user's
//! active OAuth or compat sessions, the way revocation and compat logout do: the session is
//! finished and its device deleted in the homeserver at once (a failure there is left to a queued
//! device sync). A session that is not one of the user's active ones is a 404 page.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use ulid::Ulid;

use super::{session_not_found, to_login};
use crate::auth::sessions::SessionHandles;
use crate::error::HtmlError;
use crate::extract::session::load_session;
use crate::pages::CsrfForm;
use crate::routes::{self, UrlBuilder};
use crate::storage::{compat, oauth2_sessions};

/// `POST /account/sessions/{session_id}/end`.
#[tracing::instrument(name = "handlers.views.account.session_end.post", skip_all)]
pub(super) async fn post(
    State(state): State<SessionHandles>,
    State(urls): State<UrlBuilder>,
    Path(session_id): Path<String>,
    CsrfForm { jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let mut conn = state.db.acquire().await?;
    let Some(browser) = load_session(&mut conn, &jar).await? else {
        return Ok(to_login(&urls, None, None));
    };
    let user = browser.user;
    let id: Ulid = session_id.parse().map_err(|_| session_not_found())?;
    let oauth = oauth2_sessions::find_oauth2_session(&mut conn, id)
        .await?
        .filter(|session| session.is_active() && session.user_id == Some(user.id));
    let legacy = match oauth {
        Some(_) => None,
        None => compat::find_compat_session(&mut conn, id)
            .await?
            .filter(|session| session.is_active() && session.user_id == user.id),
    };
    drop(conn);
    let ender = state.ender();
    if oauth.is_some() {
        ender.end_oauth2_session(id).await?;
    } else if let Some(session) = legacy {
        ender
            .end_compat_sessions(&user, std::slice::from_ref(&session))
            .await?;
    } else {
        return Err(session_not_found());
    }
    tracing::info!(user.id = %user.id, session.id = %id, "session ended from the account page");
    Ok(Redirect::to(&urls.relative(routes::ACCOUNT)).into_response())
}
