//! The front page at `/` (docs/architecture.md#public-routing), and the W3C "A Well-Known URL
//! for Changing Passwords" redirect.
//!
//! The page is made once at start: `templates/front/index.html` (embedded at build time) rendered
//! with the server name and whether registration is on, or, when the operator put one there,
//! `<data dir>/config/index.html` as it is (the stock Cloudron Synapse package's convention). A
//! restart applies a change. The built-in page gets the MAS pages' security headers, its
//! Content-Security-Policy included (it runs no script and loads only MAS's stylesheet); the
//! operator's page gets the same headers but no Content-Security-Policy, since what it loads is
//! the operator's choice.

use std::path::Path;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Method, Response, StatusCode};

use super::Body;
use super::local::{full, method_not_allowed};

/// The built-in page's template.
const TEMPLATE: &str = include_str!("../../../templates/front/index.html");

/// Where the W3C change-password URL leads: the account page's password form.
pub(crate) const CHANGE_PASSWORD_PAGE: &str = "/auth/account/password";

/// The MAS pages' policy (their `csp` module): no script, styles and images from our origin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the built-in page says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrontContext {
    /// The pinned server name, what people type in their app.
    pub server_name: String,
    /// Whether `/auth/register` is on (`APPLIANCE_REGISTRATION` and password login).
    pub registration: bool,
    /// Whether registering needs a token from the admin.
    pub token_required: bool,
}

/// The page `/` answers, made once.
#[derive(Debug, Clone)]
pub struct FrontPage {
    html: Bytes,
    /// Whether this is the built-in page (which gets the strict CSP).
    built_in: bool,
}

impl FrontPage {
    /// The built-in page for `context`.
    pub fn render(context: &FrontContext) -> Result<Self, minijinja::Error> {
        let mut jinja = minijinja::Environment::new();
        jinja.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // The name ends in `.html`, so minijinja escapes every value for HTML.
        jinja.add_template("index.html", TEMPLATE)?;
        let html = jinja.get_template("index.html")?.render(context)?;
        Ok(FrontPage {
            html: Bytes::from(html),
            built_in: true,
        })
    }

    /// The operator's page, served as it is.
    pub fn operator(html: Vec<u8>) -> Self {
        FrontPage {
            html: Bytes::from(html),
            built_in: false,
        }
    }

    /// The page to serve: the operator's `override_path` when it exists, else the built-in
    /// one. An override that exists but cannot be read is logged (one error line) and the
    /// built-in page is served.
    pub fn at_start(
        context: &FrontContext,
        override_path: &Path,
    ) -> Result<Self, minijinja::Error> {
        match std::fs::read(override_path) {
            Ok(html) => {
                tracing::info!(file = %override_path.display(), "front page: serving the operator's page");
                return Ok(Self::operator(html));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(
                file = %override_path.display(),
                error = %e,
                "front page: cannot read the operator's page; serving the built-in one"
            ),
        }
        Self::render(context)
    }

    /// Whether this is the operator's page.
    pub fn is_operator(&self) -> bool {
        !self.built_in
    }

    /// GET and HEAD answer the page (hyper leaves the body out of a HEAD answer); other
    /// methods 405.
    pub(crate) fn respond(&self, method: &Method) -> Response<Body> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return method_not_allowed("GET, HEAD");
        }
        let mut response = full(StatusCode::OK, self.html.clone());
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // Cheap to make again, and a restart may change it.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        if self.built_in {
            headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        }
        response
    }
}

/// `/.well-known/change-password`: 302 to the password form (W3C "A Well-Known URL for Changing
/// Passwords", §4: a redirect, any 3xx; 302 as the spec's examples).
pub(crate) fn change_password(method: &Method) -> Response<Body> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return method_not_allowed("GET, HEAD");
    }
    let mut response = full(StatusCode::FOUND, Bytes::new());
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(CHANGE_PASSWORD_PAGE));
    response
}

#[cfg(test)]
mod tests;
