//! What every HTML page needs, whichever area serves it (the pages of `views`, the consent
//! page of `oauth2`, the legacy SSO page of `compat`): the state parts that render a page with
//! a form ([`PageState`]), the form extractor that checks the CSRF token ([`CsrfForm`]), the
//! error pages for a refused CSRF check or an unreadable form or query, the body limit of the
//! `human` route group, and the user as pages show them.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::clock::Clock;
use crate::error::HtmlError;
use crate::extract::params::{FormError, ParamsError, fields, read_form_body, strict_params};
use crate::extract::{CookieJar, CookieManager, CsrfError, CsrfToken};
use crate::homeserver::{CONSENT_QUERY_TIMEOUT, HomeserverConnection};
use crate::model::User;
use crate::rng::RngSource;
use crate::routes::UrlBuilder;
use crate::templates::{Templates, UserView};

/// The largest form body a page reads (login, consent and logout forms are tiny).
pub(crate) const FORM_BODY_LIMIT: usize = 16 * 1024;

/// The user as pages show them: the display name from the homeserver (within
/// [`CONSENT_QUERY_TIMEOUT`]), falling back to the username when the homeserver does not answer
/// or has none.
pub(crate) async fn user_view(homeserver: &dyn HomeserverConnection, user: &User) -> UserView {
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

/// The parts of the state that render a page with a form: the templates, the public URLs,
/// and the clock and randomness of its CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct PageState {
    /// The web page templates.
    pub(crate) templates: Templates,
    /// Public URLs.
    pub(crate) urls: UrlBuilder,
    /// The injected clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// The injected randomness.
    pub(crate) rng: RngSource,
}

impl FromRef<AppState> for PageState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            templates: state.templates.clone(),
            urls: state.urls.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
        }
    }
}

impl PageState {
    /// The CSRF token for a form being rendered (the cookie is set on `jar`).
    pub(crate) fn csrf_token(&self, jar: &mut CookieJar) -> CsrfToken {
        jar.csrf_token(self.clock.as_ref(), &mut self.rng.fork())
    }
}

/// A page's form POST whose CSRF token passed (docs/protocol.md#cookies-and-csrf): the fields
/// `T` and the request's cookie jar, handed back for the handler's own use. The body is read
/// strictly ([`StrictForm`]: bad escapes, bytes that are not UTF-8 and repeated names refused)
/// and refused before the handler runs: an unreadable form is the [`bad_form`] page, then a
/// `csrf` field that does not match the session's CSRF cookie the [`csrf_failed`] page (403).
/// Being a body extractor, it comes last among a handler's arguments.
#[derive(Debug)]
pub(crate) struct CsrfForm<T = NoFields> {
    /// The request's cookies (the CSRF check does not change them).
    pub(crate) jar: CookieJar,
    /// The other fields of the form.
    pub(crate) fields: T,
}

/// A form with no field but the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct NoFields {}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    CookieManager: FromRef<S>,
    Arc<dyn Clock>: FromRef<S>,
{
    type Rejection = HtmlError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let jar = CookieManager::from_ref(state).jar(request.headers());
        let read = async {
            let body = read_form_body(request, state).await?;
            let csrf = strict_params(&body)?.remove("csrf").unwrap_or_default();
            Ok::<_, FormError>((csrf, fields::<T>(&body)?))
        };
        let (csrf, fields) = read.await.map_err(|rejection| bad_form(&rejection))?;
        let clock = Arc::<dyn Clock>::from_ref(state);
        jar.verify_csrf(clock.as_ref(), &csrf)
            .map_err(csrf_failed)?;
        Ok(Self { jar, fields })
    }
}

/// The page for a refused CSRF check.
fn csrf_failed(error: CsrfError) -> HtmlError {
    tracing::info!(reason = %error, "form refused: CSRF check failed");
    HtmlError::new(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page you sent was too old or did not come from this site. Go back, reload the \
         page and try again. This site needs cookies to be enabled.",
    )
}

/// The page for a form body that could not be read.
pub(crate) fn bad_form(rejection: &FormError) -> HtmlError {
    tracing::info!(reason = %rejection, "form refused");
    HtmlError::new(
        rejection.status(),
        "Invalid form",
        "The form could not be read. Go back, reload the page and try again.",
    )
}

/// The page for a query string that could not be read.
pub(crate) fn bad_query(rejection: &ParamsError) -> HtmlError {
    tracing::info!(reason = %rejection, "query refused");
    HtmlError::bad_request(
        "Invalid link",
        "The address of this page is malformed. Go back and try again.",
    )
}
