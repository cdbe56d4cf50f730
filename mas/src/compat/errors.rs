//! The Matrix errors more than one compat endpoint answers ([`MatrixError`], Matrix
//! client-server API "Standard error response"), and the reading of a JSON body into them.

use std::borrow::Cow;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::MatrixError;
use crate::ratelimit::RateLimited;

/// `M_FORBIDDEN` (403).
pub(super) fn forbidden(message: &'static str) -> MatrixError {
    MatrixError::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
}

/// `M_BAD_JSON` (400): JSON of the wrong shape.
pub(super) fn bad_json(message: impl Into<Cow<'static, str>>) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
}

/// `M_LIMIT_EXCEEDED` with `retry_after_ms`.
pub(super) fn limit_exceeded(limited: RateLimited) -> MatrixError {
    MatrixError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "M_LIMIT_EXCEEDED",
        "Too many login attempts; try again later",
    )
    .retry_after(&limited)
}

/// `M_UNKNOWN_TOKEN` (401, not a soft logout).
pub(super) fn unknown_token() -> MatrixError {
    MatrixError::new(
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
        "Invalid access token passed.",
    )
    .with("soft_logout", false)
}

/// Parses a JSON body: not JSON → `M_NOT_JSON`, the wrong shape → `M_BAD_JSON` with serde's
/// message.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, MatrixError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_NOT_JSON",
            "The request body is not JSON",
        )
    })?;
    serde_json::from_value(value).map_err(|error| bad_json(format!("Invalid request: {error}")))
}
