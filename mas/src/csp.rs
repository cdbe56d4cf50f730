//! The security headers of every page (a layer on the `human` route group, the only one that
//! serves HTML):
//!
//! - `Content-Security-Policy` (CSP Level 3): the pages run no script at all, so
//!   `default-src 'none'`; styles and images from our origin; forms may only go to our origin
//!   (`form-action`, which browsers also apply to the redirect that answers a form); no
//!   framing; no `<base>`. A page whose form, or the redirect after it, goes to a client adds
//!   that exact target with [`CspSources`] as a response extension: the `form_post` page, the
//!   consent page and the legacy SSO "continue" page. The consent page adds the client's logo
//!   the same way.
//!
//! Every response of the group also gets `Referrer-Policy: same-origin` (page URLs carry grant
//! ids and `state`), `X-Frame-Options: DENY` (for browsers without `frame-ancestors`) and
//! `X-Content-Type-Options: nosniff`.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use url::Url;

use crate::model::redirect_uri;

/// Extra sources one page needs, set as a response extension by its handler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CspSources {
    /// Where a form (or the redirect that answers it) may go besides our origin.
    form_action: Vec<String>,
    /// Where images may come from besides our origin.
    img_src: Vec<String>,
}

impl CspSources {
    /// Lets forms reach `uri` (its origin, or its private-use scheme). An unsafe URI adds
    /// nothing, so a form to it is blocked by the browser.
    #[must_use]
    pub fn form_action(mut self, uri: &Url) -> Self {
        if let Some(source) = redirect_uri::csp_source(uri) {
            self.form_action.push(source);
        }
        self
    }

    /// Lets images come from `uri`'s origin when it is https.
    #[must_use]
    pub fn img_src(mut self, uri: &Url) -> Self {
        if uri.scheme() == "https" && uri.host_str().is_some() {
            self.img_src.push(uri.origin().ascii_serialization());
        }
        self
    }
}

/// The policy of a page that needs nothing from elsewhere.
const STRICT: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// The policy for a page with `extra` sources.
pub fn policy(extra: &CspSources) -> String {
    let list = |sources: &[String]| {
        sources
            .iter()
            .fold(String::new(), |list, source| list + " " + source)
    };
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'{}; form-action 'self'{}; \
         frame-ancestors 'none'; base-uri 'none'",
        list(&extra.img_src),
        list(&extra.form_action),
    )
}

/// Layer for the pages: adds the headers above (the CSP to HTML responses).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let extra = response
        .extensions_mut()
        .remove::<CspSources>()
        .unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !is_html {
        return response;
    }
    // The sources are origins and schemes that passed `redirect_uri::check_shape`, which
    // cannot hold a character a header refuses; a failure would leave the strict default.
    let value = HeaderValue::try_from(policy(&extra)).unwrap_or(HeaderValue::from_static(STRICT));
    headers.insert(header::CONTENT_SECURITY_POLICY, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_allows_no_script_and_only_our_forms() {
        assert_eq!(policy(&CspSources::default()), STRICT);
        assert_eq!(
            STRICT,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
    }

    #[test]
    fn pages_add_exact_targets_and_nothing_unsafe() {
        let extra = CspSources::default()
            .form_action(&Url::parse("https://app.example.com:8443/cb?x=1").unwrap())
            .form_action(&Url::parse("com.example.app:/cb").unwrap())
            .form_action(&Url::parse("javascript:alert(1)").unwrap())
            .img_src(&Url::parse("https://cdn.example.com/logo.png").unwrap())
            .img_src(&Url::parse("http://cdn.example.com/logo.png").unwrap());
        assert_eq!(
            policy(&extra),
            "default-src 'none'; style-src 'self'; img-src 'self' https://cdn.example.com; \
             form-action 'self' https://app.example.com:8443 com.example.app:; \
             frame-ancestors 'none'; base-uri 'none'"
        );
    }
}
