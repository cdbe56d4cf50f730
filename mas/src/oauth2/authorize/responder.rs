//! The authorization response (RFC 6749 §4.1.2, §4.1.2.1; OAuth 2.0 Multiple Response Type
//! Encoding Practices; OAuth 2.0 Form Post Response Mode): [`Callback`] sends parameters back to
//! the client in the `query`, `fragment` or `form_post` mode, or shows the page that refuses a
//! request with the way back (RFC 9700 §4.11.2). It never decides what to send; the
//! authorization endpoint and the consent page do.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use url::Url;

use crate::csp::CspSources;
use crate::error::HtmlError;
use crate::model::{ResponseMode, redirect_uri};
use crate::templates::{AuthorizeErrorView, FormPostContext, FormPostParam, Templates};

/// Where and how an authorization response goes back to the client.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    /// The validated redirect URI.
    pub(crate) redirect_uri: Url,
    /// How the parameters travel.
    pub(crate) mode: ResponseMode,
    /// The client's `state`, echoed in every response.
    pub(crate) state: Option<String>,
    /// The client's name, for the `form_post` page.
    pub(crate) client_name: String,
}

impl Callback {
    /// Sends `params` (plus `state`) to the client: a 303 redirect for `query` and `fragment`,
    /// the form page for `form_post`. Never cached: it may carry a code or an ID token.
    pub(crate) fn respond(
        &self,
        templates: &Templates,
        prefix: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<Response, HtmlError> {
        self.check_target()?;
        let params = self.with_state(params);
        let response = match self.mode {
            ResponseMode::Query | ResponseMode::Fragment => {
                Redirect::to(self.url_with(&params).as_str()).into_response()
            }
            ResponseMode::FormPost => self.page(templates, prefix, params, None)?,
        };
        Ok(no_store(response))
    }

    /// Sends the OAuth error `error` with a description to the client.
    pub(crate) fn error(
        &self,
        templates: &Templates,
        prefix: &str,
        error: &'static str,
        description: &str,
    ) -> Result<Response, HtmlError> {
        self.respond(templates, prefix, error_params(error, description))
    }

    /// Tells the person that the client's request was refused, with the way back to the
    /// client (the error in its response mode) as a link or a form they choose to follow:
    /// RFC 9700 §4.11.2, so a registered client cannot use us to redirect anywhere at once.
    pub(crate) fn error_page(
        &self,
        templates: &Templates,
        prefix: &str,
        error: &'static str,
        description: &str,
    ) -> Result<Response, HtmlError> {
        self.check_target()?;
        let params = self.with_state(error_params(error, description));
        let refusal = AuthorizeErrorView {
            code: error.to_owned(),
            description: description.to_owned(),
        };
        let mut response = match self.mode {
            ResponseMode::Query | ResponseMode::Fragment => {
                let link = self.url_with(&params).to_string();
                self.page(templates, prefix, Vec::new(), Some((refusal, Some(link))))?
            }
            ResponseMode::FormPost => {
                self.page(templates, prefix, params, Some((refusal, None)))?
            }
        };
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Ok(no_store(response))
    }

    /// Defence in depth: whatever stored it, a target that could run script on our origin or
    /// reach local content is never used.
    fn check_target(&self) -> Result<(), HtmlError> {
        if redirect_uri::is_safe_target(&self.redirect_uri) {
            return Ok(());
        }
        tracing::warn!(
            redirect_uri.scheme = self.redirect_uri.scheme(),
            "authorization response not sent: unsafe redirect URI"
        );
        Err(unsafe_redirect_uri())
    }

    fn with_state(&self, mut params: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        params
    }

    /// The redirect URI with `params` in its query or fragment (by the response mode).
    fn url_with(&self, params: &[(&'static str, String)]) -> Url {
        let mut url = self.redirect_uri.clone();
        let pairs = params.iter().map(|(k, v)| (*k, v.as_str()));
        if self.mode == ResponseMode::Fragment {
            let fragment = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            url.set_fragment(Some(&fragment));
        } else {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// The page of the `form_post` mode, or of a refusal; its CSP lets the form reach the
    /// redirect URI and nothing else.
    fn page(
        &self,
        templates: &Templates,
        prefix: &str,
        params: Vec<(&'static str, String)>,
        refusal: Option<(AuthorizeErrorView, Option<String>)>,
    ) -> Result<Response, HtmlError> {
        let (error, link) = refusal.map_or((None, None), |(error, link)| (Some(error), link));
        let context = FormPostContext {
            prefix: prefix.to_owned(),
            redirect_uri: self.redirect_uri.to_string(),
            client_name: self.client_name.clone(),
            params: params
                .into_iter()
                .map(|(name, value)| FormPostParam {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            error,
            link,
        };
        let html = templates.render_form_post(&context)?;
        let mut response = Html(html).into_response();
        response
            .extensions_mut()
            .insert(CspSources::default().form_action(&self.redirect_uri));
        Ok(response)
    }
}

fn error_params(error: &'static str, description: &str) -> Vec<(&'static str, String)> {
    vec![
        ("error", error.to_owned()),
        ("error_description", description.to_owned()),
    ]
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn unsafe_redirect_uri() -> HtmlError {
    HtmlError::bad_request(
        "This application cannot sign you in",
        "The address this application asked to send you back to is not allowed on this \
         server, so the request was stopped. Contact the developer of the application.",
    )
}
