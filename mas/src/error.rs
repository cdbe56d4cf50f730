//! The three error shapes MAS answers with, each one small type:
//!
//! - [`OAuthError`]: RFC 6749 §5.2 JSON (`error`, `error_description`) for the OAuth API;
//! - [`MatrixError`]: Matrix JSON (`errcode`, `error`) for the compat layer;
//! - [`HtmlError`]: an error page for people, rendered by [`render_html_errors`] (a layer on
//!   the human routes, which has the templates).
//!
//! Each endpoint's `RouteError` maps its variants onto one of these. Unexpected failures go
//! through [`Internal`]: the person or client sees a generic message, and the details are logged
//! once, by [`log_internal_errors`], never shown.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::routes::UrlBuilder;
use crate::templates::{ErrorContext, Templates};

/// The details of an unexpected failure, carried to the logging layer in a response extension.
#[derive(Debug, Clone)]
pub struct Internal(pub Arc<dyn std::error::Error + Send + Sync>);

impl Internal {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(Arc::from(error.into()))
    }
}

impl std::fmt::Display for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// An RFC 6749 error answer.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: Option<Cow<'static, str>>,
    /// Set for unexpected failures, so that they are logged.
    pub internal: Option<Internal>,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl OAuthError {
    /// `error` with a description, answered with `status`.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            error,
            description: Some(description.into()),
            internal: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 500 `server_error`, with the cause logged.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: Some("the server failed to handle the request".into()),
            internal: Some(Internal::new(error)),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: self.description.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a failed client authentication names the scheme.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        if let Some(internal) = self.internal {
            response.extensions_mut().insert(internal);
        }
        response
    }
}

/// A Matrix client-server API error answer.
#[derive(Debug, Clone)]
pub struct MatrixError {
    pub status: StatusCode,
    pub errcode: &'static str,
    pub error: Cow<'static, str>,
    /// Extra fields, e.g. `retry_after_ms` or `soft_logout`.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// `Retry-After` in seconds, for a 429 (RFC 6585 §4).
    pub retry_after: Option<u64>,
    pub internal: Option<Internal>,
}

impl MatrixError {
    pub fn new(
        status: StatusCode,
        errcode: &'static str,
        error: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            errcode,
            error: error.into(),
            extra: None,
            retry_after: None,
            internal: None,
        }
    }

    /// 500 `M_UNKNOWN`, with the cause logged.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            internal: Some(Internal::new(error)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "Internal server error",
            )
        }
    }

    /// Adds a field to the body.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }
    /// A rate limit's refusal: `retry_after_ms` in the body (Matrix client-server API,
    /// `M_LIMIT_EXCEEDED`) and `Retry-After` in seconds in the header.
    #[must_use]
    pub fn retry_after(mut self, limited: &crate::ratelimit::RateLimited) -> Self {
        self.retry_after = Some(limited.retry_after_secs());
        self.with("retry_after_ms", limited.retry_after_ms())
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        let mut body = self.extra.unwrap_or_default();
        body.insert("errcode".to_owned(), self.errcode.into());
        body.insert("error".to_owned(), self.error.into_owned().into());
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(internal) = self.internal {
            response.extensions_mut().insert(internal);
        }
        response
    }
}

/// An error page for a person. The body is rendered by [`render_html_errors`].
#[derive(Debug, Clone)]
pub struct HtmlError {
    pub status: StatusCode,
    pub title: Cow<'static, str>,
    pub description: Cow<'static, str>,
    pub internal: Option<Internal>,
}

impl HtmlError {
    pub fn new(
        status: StatusCode,
        title: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            title: title.into(),
            description: description.into(),
            internal: None,
        }
    }

    /// 400 with a title and description.
    pub fn bad_request(
        title: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, title, description)
    }

    /// 500 "Something went wrong", with the cause logged.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            internal: Some(Internal::new(error)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete this request. Please try again later.",
            )
        }
    }
}

/// Marks a response whose body [`render_html_errors`] must render.
#[derive(Debug, Clone)]
struct PendingHtmlError {
    title: Cow<'static, str>,
    description: Cow<'static, str>,
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            format!("{}\n\n{}\n", self.title, self.description),
        )
            .into_response();
        response.extensions_mut().insert(PendingHtmlError {
            title: self.title,
            description: self.description,
        });
        if let Some(internal) = self.internal {
            response.extensions_mut().insert(internal);
        }
        response
    }
}

/// Layer for the human routes: renders [`HtmlError`]s with the error template (plain text if
/// even that fails).
pub async fn render_html_errors(
    State(urls): State<UrlBuilder>,
    State(templates): State<Templates>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let Some(pending) = response.extensions_mut().remove::<PendingHtmlError>() else {
        return response;
    };
    let prefix = urls.prefix().to_owned();
    let context = ErrorContext {
        back_url: Some(format!("{prefix}/")),
        prefix,
        title: pending.title.into_owned(),
        description: pending.description.into_owned(),
        details: None,
    };
    match templates.render_error(&context) {
        Ok(html) => {
            let (mut parts, _) = response.into_parts();
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, html.into())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the error page");
            response
        }
    }
}

/// Layer for every route: logs the details of an unexpected failure once.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(internal) = response.extensions().get::<Internal>() {
        tracing::error!(http.method = %method, http.path = %path, error = %internal, "request failed");
    }
    response
}

// Storage failures are the server's fault: each error shape answers them as its 500 and logs
// the cause, so handlers can use `?` on storage calls.
impl From<crate::storage::StorageError> for OAuthError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::internal(error)
    }
}

impl From<crate::storage::StorageError> for MatrixError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::internal(error)
    }
}

impl From<crate::storage::StorageError> for HtmlError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::internal(error)
    }
}

// A failed query or commit outside the storage functions (`tx.commit()`, `db.begin()`) is
// the server's fault in the same way.
impl From<sqlx::Error> for OAuthError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

impl From<sqlx::Error> for MatrixError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

impl From<sqlx::Error> for HtmlError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

// A page that cannot be rendered is the server's fault too.
impl From<crate::templates::TemplateError> for HtmlError {
    fn from(error: crate::templates::TemplateError) -> Self {
        Self::internal(error)
    }
}
