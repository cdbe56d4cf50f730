//! Small helpers over the shared HTTP client: GET a JSON document and describe transport
//! errors without URLs' query strings (a userinfo or token request carries no secret in its
//! URL, but we keep messages short and uniform). Every answer's body is read through
//! [`read_body`], which refuses anything over [`MAX_BODY_BYTES`] without reading past it.

use serde::de::DeserializeOwned;
use url::Url;

use super::{DiscoveryError, UpstreamError};
use crate::telemetry::ErrorChain;

/// The largest body MAS reads from a provider (discovery, JWKS, token, userinfo): real answers
/// are a few KiB; a provider streaming without end must not fill our memory.
pub(super) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reading an answer's body failed.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Over [`MAX_BODY_BYTES`]; the message says how we know (for the log line).
    TooLarge(String),
    /// The transport failed while reading.
    Transport(reqwest::Error),
}

/// Reads `response`'s body, refusing it (without reading on) once it exceeds
/// [`MAX_BODY_BYTES`]: at once when the `Content-Length` says so, else when the stream does.
pub(super) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if let Some(length) = response.content_length()
        && length > MAX_BODY_BYTES as u64
    {
        return Err(BodyError::TooLarge(format!(
            "Content-Length {length} is over the {MAX_BODY_BYTES}-byte limit"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge(format!(
                "body is over the {MAX_BODY_BYTES}-byte limit"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A GET of a JSON document failed.
#[derive(Debug)]
pub(super) enum FetchError {
    /// Transport error or 5xx: the provider is down.
    Unreachable(UpstreamError),
    /// A non-2xx status below 500.
    Status(u16),
    /// The body is not the expected JSON.
    Json(String),
    /// The body is over [`MAX_BODY_BYTES`].
    TooLarge(String),
}

impl FetchError {
    /// As the failure to fetch the `what` document (`discovery` or `jwks`).
    pub(super) fn into_discovery_error(self, what: &'static str) -> UpstreamError {
        match self {
            Self::Unreachable(error) => error,
            Self::Status(status) => DiscoveryError::Status { what, status }.into(),
            Self::Json(message) => DiscoveryError::Json { what, message }.into(),
            Self::TooLarge(message) => DiscoveryError::TooLarge { what, message }.into(),
        }
    }
}

/// GETs `url` and decodes its JSON body.
pub(super) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &'static str,
    url: &Url,
) -> Result<T, FetchError> {
    let response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| FetchError::Unreachable(unreachable(endpoint, &error)))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(FetchError::Unreachable(UpstreamError::Unreachable {
            endpoint,
            message: format!("HTTP {}", status.as_u16()),
        }));
    }
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let body = read_body(response).await.map_err(|error| match error {
        BodyError::TooLarge(message) => FetchError::TooLarge(message),
        BodyError::Transport(error) => FetchError::Unreachable(unreachable(endpoint, &error)),
    })?;
    serde_json::from_slice(&body).map_err(|error| FetchError::Json(error.to_string()))
}

/// An [`UpstreamError::Unreachable`] for a transport error, with its causes.
pub(super) fn unreachable(endpoint: &'static str, error: &reqwest::Error) -> UpstreamError {
    UpstreamError::Unreachable {
        endpoint,
        message: ErrorChain(error).to_string(),
    }
}
