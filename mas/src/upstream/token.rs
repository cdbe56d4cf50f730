//! The code exchange at the provider's token endpoint (RFC 6749 §4.1.3) with
//! `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic),
//! `client_secret_post` or `none`, and the PKCE verifier when the request used one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::discovery::Endpoints;
use super::fetch::{BodyError, read_body, unreachable};
use super::{CallbackParams, Provider, UpstreamError};
use crate::config::upstream::TokenAuthMethod;

/// The tokens we use from a successful answer. Its `Debug` hides them.
pub(super) struct Tokens {
    pub(super) access_token: String,
    pub(super) id_token: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Provider {
    /// Exchanges the authorization code for tokens.
    pub(super) async fn exchange_code(
        &self,
        endpoints: &Endpoints,
        params: &CallbackParams<'_>,
    ) -> Result<Tokens, UpstreamError> {
        let response = self
            .token_request(endpoints, params)
            .send()
            .await
            .map_err(|error| unreachable("token", &error))?;
        let status = response.status();
        let body = read_body(response).await.map_err(|error| match error {
            BodyError::TooLarge(message) => invalid_response(format!("answer refused: {message}")),
            BodyError::Transport(error) => unreachable("token", &error),
        })?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        tokens_of(&body)
    }

    /// The token request: the code, the PKCE verifier, and the client's credentials the way
    /// its `token_endpoint_auth_method` says.
    fn token_request(
        &self,
        endpoints: &Endpoints,
        params: &CallbackParams<'_>,
    ) -> reqwest::RequestBuilder {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", params.code),
            ("redirect_uri", params.redirect_uri),
        ];
        if let Some(verifier) = params.code_verifier {
            form.push(("code_verifier", verifier));
        }
        let secret = self.client_secret.as_deref().unwrap_or_default();
        let mut request = self
            .http
            .post(endpoints.token.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match self.auth_method {
            TokenAuthMethod::ClientSecretBasic => {
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    basic_authorization(&self.client_id, secret),
                );
            }
            TokenAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
            }
            // Refused at start-up; `none` sends the id only.
            _ => form.push(("client_id", &self.client_id)),
        }
        request.form(&form)
    }
}

/// The error for a non-success answer: the provider's OAuth error when it sent one (RFC 6749
/// §5.2), otherwise unreachable on a 5xx and an invalid response on anything else.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> UpstreamError {
    if let Ok(error) = serde_json::from_slice::<ErrorResponse>(body) {
        // The provider's text ends up in a log line and on a page: one short line.
        return UpstreamError::TokenEndpoint {
            error: error
                .error
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect(),
            description: error.error_description.map(|description| {
                description
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(200)
                    .collect()
            }),
        };
    }
    if status.is_server_error() {
        return UpstreamError::Unreachable {
            endpoint: "token",
            message: format!("HTTP {}", status.as_u16()),
        };
    }
    invalid_response(format!("HTTP {}", status.as_u16()))
}

/// The tokens of a successful answer: a Bearer access token and an ID token.
fn tokens_of(body: &[u8]) -> Result<Tokens, UpstreamError> {
    let tokens: TokenResponse = serde_json::from_slice(body)
        .map_err(|error| invalid_response(format!("not a token response: {error}")))?;
    if !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(invalid_response(format!(
            "token_type is {:?}, not Bearer",
            tokens.token_type
        )));
    }
    let id_token = tokens
        .id_token
        .ok_or_else(|| invalid_response("no id_token (is openid in the scope?)".to_owned()))?;
    Ok(Tokens {
        access_token: tokens.access_token,
        id_token,
    })
}

fn invalid_response(description: String) -> UpstreamError {
    UpstreamError::TokenEndpoint {
        error: "invalid_response".to_owned(),
        description: Some(description),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
pub(super) fn basic_authorization(client_id: &str, secret: &str) -> String {
    let encode =
        |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_first() {
        // RFC 6749 §2.3.1: "a b:c" → "a+b%3Ac".
        let header = basic_authorization("client id", "s:cret");
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"client+id:s%3Acret");
    }
}
