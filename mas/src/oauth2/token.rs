//! `POST /oauth2/token` (RFC 6749 §3.2, docs/protocol.md#token-endpoint): authenticates the client,
//! checks that it registered the requested grant type, and hands over to one module per grant.
//! Every answer, success or error, carries `Cache-Control: no-store` and `Pragma: no-cache`. The
//! device-code grant is not offered (discovery does not list it).

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::{CryptoRng, RngCore};
use serde::Serialize;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::app::AppState;
use crate::clock::Clock;
use crate::crypto::{TokenKind, sha256_hex};
use crate::error::OAuthError;
use crate::extract::client_auth::ClientAuthorization;
use crate::model::{RefreshToken, Scope};
use crate::storage::{StorageError, access_tokens, refresh_tokens};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    /// Seconds, a JSON integer.
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Omitted when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl TokenResponse {
    /// The answer for a freshly stored pair.
    fn new(pair: TokenPair, ttl: Duration, scope: &Scope) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: ttl.as_secs(),
            refresh_token: pair.refresh_token,
            scope: (!scope.is_empty()).then(|| scope.clone()),
            id_token: None,
        }
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// `Cache-Control: no-store`, `Pragma: no-cache` (RFC 6749 §5.1).
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `invalid_grant` (400): the code or refresh token cannot be used.
pub(crate) fn invalid_grant(description: &'static str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// The grant types this endpoint knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

/// `POST /oauth2/token`.
#[tracing::instrument(name = "handlers.oauth2.token.post", skip_all, fields(oauth2_client.id))]
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: ClientAuthorization,
) -> Response {
    match handle(&state, &headers, &request).await {
        Ok(response) => response.into_response(),
        // OAuthError sets no-store itself.
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    request: &ClientAuthorization,
) -> Result<TokenResponse, OAuthError> {
    let credentials = request.credentials.as_ref().ok_or_else(|| {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication required",
        )
    })?;
    let grant_type = match request.form.require("grant_type")? {
        "authorization_code" => GrantType::AuthorizationCode,
        "refresh_token" => GrantType::RefreshToken,
        "client_credentials" => GrantType::ClientCredentials,
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "this grant type is not supported",
            ));
        }
    };
    let client = {
        let mut conn = state.db.acquire().await?;
        credentials
            .authenticate(&mut conn, &state.encrypter)
            .await?
    };
    tracing::Span::current().record("oauth2_client.id", tracing::field::display(client.id));
    let allowed = client.metadata.grant_types;
    let registered = match grant_type {
        GrantType::AuthorizationCode => allowed.authorization_code,
        GrantType::RefreshToken => allowed.refresh_token,
        GrantType::ClientCredentials => allowed.client_credentials,
    };
    if !registered {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the client is not registered for this grant type",
        ));
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    match grant_type {
        GrantType::AuthorizationCode => {
            authorization_code::grant(state, &client, &request.form, user_agent).await
        }
        GrantType::RefreshToken => refresh_token::grant(state, &client, &request.form).await,
        GrantType::ClientCredentials => {
            client_credentials::grant(state, &client, &request.form, user_agent).await
        }
    }
}

/// The texts of a new access token and (optionally) refresh token, generated before any
/// database work so that the ID token can be signed outside the transaction.
pub(crate) struct TokenPair {
    access_token: String,
    refresh_token: Option<String>,
}

impl TokenPair {
    /// Fresh `mat_` (and `mar_`) tokens.
    pub(crate) fn generate(rng: &mut (impl RngCore + CryptoRng), with_refresh: bool) -> Self {
        Self {
            access_token: TokenKind::AccessToken.generate(rng),
            refresh_token: with_refresh.then(|| TokenKind::RefreshToken.generate(rng)),
        }
    }

    /// The access token's text (for `at_hash`).
    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    /// Stores both tokens of `session_id` by their hashes; the access token expires after
    /// `ttl`. Returns the refresh token's row, if there is one.
    pub(crate) async fn store(
        &self,
        conn: &mut AnyConnection,
        clock: &dyn Clock,
        rng: &mut (impl RngCore + ?Sized),
        session_id: Ulid,
        ttl: Duration,
    ) -> Result<Option<RefreshToken>, StorageError> {
        let access = access_tokens::add_access_token(
            conn,
            clock,
            rng,
            session_id,
            &sha256_hex(&self.access_token),
            Some(ttl),
        )
        .await?;
        let refresh = match &self.refresh_token {
            Some(token) => Some(
                refresh_tokens::add_refresh_token(
                    conn,
                    clock,
                    rng,
                    session_id,
                    Some(access.id),
                    &sha256_hex(token),
                )
                .await?,
            ),
            None => None,
        };
        Ok(refresh)
    }
}

#[cfg(test)]
mod tests;
