//! Small helpers over the shared HTTP client: GET a JSON document and describe transport
//! errors without URLs' query strings (a userinfo or token request carries no secret in its
//! URL, but we keep messages short and uniform).

use serde::de::DeserializeOwned;
use url::Url;

use super::UpstreamError;

/// A GET of a JSON document failed.
#[derive(Debug)]
pub(super) enum FetchError {
    /// Transport error or 5xx: the provider is down.
    Unreachable(UpstreamError),
    /// A non-2xx status below 500.
    Status(u16),
    /// The body is not the expected JSON.
    Json(String),
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
    let body = response
        .bytes()
        .await
        .map_err(|error| FetchError::Unreachable(unreachable(endpoint, &error)))?;
    serde_json::from_slice(&body).map_err(|error| FetchError::Json(error.to_string()))
}

/// An [`UpstreamError::Unreachable`] for a transport error, with its causes.
pub(super) fn unreachable(endpoint: &'static str, error: &reqwest::Error) -> UpstreamError {
    UpstreamError::Unreachable {
        endpoint,
        message: describe(error),
    }
}

/// The error and its sources, joined with `: `.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
