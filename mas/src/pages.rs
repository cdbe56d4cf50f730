//! What every HTML page needs, whichever area serves it (the pages of `views`, the consent
//! page of `oauth2`, the legacy SSO page of `compat`): the CSRF-only form, the error pages for
//! a refused CSRF check or an unreadable form or query, the body limit of the `human` route
//! group, and the user as pages show them.

use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::AppState;
use crate::error::HtmlError;
use crate::extract::CsrfError;
use crate::homeserver::CONSENT_QUERY_TIMEOUT;
use crate::model::User;
use crate::templates::UserView;

/// The largest form body a page reads (login, consent and logout forms are tiny).
pub(crate) const FORM_BODY_LIMIT: usize = 16 * 1024;

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

/// A form field set: what every page POST carries.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    /// The CSRF token.
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The page for a refused CSRF check.
pub(crate) fn csrf_failed(error: CsrfError) -> HtmlError {
    tracing::info!(reason = %error, "form refused: CSRF check failed");
    HtmlError::new(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page you sent was too old or did not come from this site. Go back, reload the \
         page and try again. This site needs cookies to be enabled.",
    )
}

/// The page for a form body that could not be read.
pub(crate) fn bad_form(rejection: &axum::extract::rejection::FormRejection) -> HtmlError {
    let status = rejection.status();
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    HtmlError::new(
        status,
        "Invalid form",
        "The form could not be read. Go back, reload the page and try again.",
    )
}

/// The page for a query string that could not be read.
pub(crate) fn bad_query(_rejection: &axum::extract::rejection::QueryRejection) -> HtmlError {
    HtmlError::bad_request(
        "Invalid link",
        "The address of this page is malformed. Go back and try again.",
    )
}
