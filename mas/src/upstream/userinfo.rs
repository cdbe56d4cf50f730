//! The userinfo request (OpenID Connect Core §5.3): a GET with the access token; the answer
//! must be a JSON object whose `sub` equals the ID token's (§5.3.2).

use serde_json::{Map, Value};

use super::discovery::Endpoints;
use super::fetch::{BodyError, read_body, unreachable};
use super::{Provider, UpstreamError, UserinfoError};

impl Provider {
    /// Fetches the userinfo claims.
    pub(super) async fn fetch_userinfo(
        &self,
        endpoints: &Endpoints,
        access_token: &str,
        id_token_claims: &Map<String, Value>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let Some(url) = &endpoints.userinfo else {
            // Discovery and the fallback both require it when fetch_userinfo is set.
            return Err(UserinfoError::Json("no userinfo endpoint".to_owned()).into());
        };
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| unreachable("userinfo", &error))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(UpstreamError::Unreachable {
                endpoint: "userinfo",
                message: format!("HTTP {}", status.as_u16()),
            });
        }
        if !status.is_success() {
            return Err(UserinfoError::Status(status.as_u16()).into());
        }
        let body = read_body(response).await.map_err(|error| match error {
            BodyError::TooLarge(message) => UserinfoError::TooLarge(message).into(),
            BodyError::Transport(error) => unreachable("userinfo", &error),
        })?;
        let claims: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|error| UserinfoError::Json(error.to_string()))?;
        if claims.get("sub") != id_token_claims.get("sub") {
            return Err(UserinfoError::SubjectMismatch.into());
        }
        Ok(claims)
    }
}
