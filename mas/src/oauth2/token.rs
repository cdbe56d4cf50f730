//! `POST /oauth2/token` (RFC 6749 §3.2, docs/protocol.md#token-endpoint): authenticates the client,
//! checks that it registered the requested grant type, and hands over to one module per grant.
//! Every answer, success or error, carries `Cache-Control: no-store` and `Pragma: no-cache`.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
mod issue;
pub mod refresh_token;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::{CryptoRng, RngCore};
use serde::Serialize;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::app::{AppState, SiteConfig};
use crate::auth::sessions::SessionHandles;
use crate::clock::Clock;
use crate::crypto::keystore::Keystore;
use crate::crypto::{Encrypter, TokenKind, sha256_hex};
use crate::error::OAuthError;
use crate::extract::client_auth::{ClientAuthorization, Credentials, FormParams};
use crate::model::{Client, RefreshToken, Scope};
use crate::oauth2::discovery::DEVICE_CODE_GRANT_TYPE;
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

/// The grant types this endpoint knows (RFC 6749 §4.1.3, §4.4.2, §6; RFC 8628 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    DeviceCode,
}

impl GrantType {
    /// The request's `grant_type`: missing is `invalid_request`, unknown
    /// `unsupported_grant_type`.
    fn from_form(form: &FormParams) -> Result<Self, OAuthError> {
        match form.require("grant_type")? {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "client_credentials" => Ok(Self::ClientCredentials),
            DEVICE_CODE_GRANT_TYPE => Ok(Self::DeviceCode),
            _ => Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "this grant type is not supported",
            )),
        }
    }

    /// Whether the authenticated `client` may use this grant: it must have registered it, and
    /// `client_credentials` needs a confidential client (RFC 6749 §4.4).
    pub(crate) fn check_client(self, client: &Client) -> Result<(), OAuthError> {
        let allowed = client.metadata.grant_types;
        let registered = match self {
            Self::AuthorizationCode => allowed.authorization_code,
            Self::RefreshToken => allowed.refresh_token,
            Self::ClientCredentials => allowed.client_credentials,
            Self::DeviceCode => allowed.device_code,
        };
        if !registered {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the client is not registered for this grant type",
            ));
        }
        if self == Self::ClientCredentials && client.is_public() {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "public clients may not use client_credentials",
            ));
        }
        Ok(())
    }
}

/// A token request, typed by its `grant_type`, with the parameters each grant reads. Built
/// after the client is authenticated and allowed the grant, so that those errors win over a
/// missing or malformed parameter.
pub(crate) enum TokenRequest<'a> {
    /// RFC 6749 §4.1.3 (and RFC 7636 §4.5 for `code_verifier`).
    AuthorizationCode {
        /// The authorization code.
        code: &'a str,
        /// Must repeat the authorization request's, when that one carried it.
        redirect_uri: Option<&'a str>,
        /// The PKCE verifier.
        code_verifier: Option<&'a str>,
    },
    /// RFC 6749 §6. Its optional `scope` (narrowing) is not read: the session keeps its scope.
    RefreshToken {
        /// The presented refresh token.
        refresh_token: &'a str,
    },
    /// RFC 6749 §4.4.2.
    ClientCredentials {
        /// The requested scope; absent or empty is the empty scope.
        scope: Option<Scope>,
    },
    /// RFC 8628 §3.4.
    DeviceCode {
        /// The `device_code` of the device authorization response.
        device_code: &'a str,
    },
}

impl<'a> TokenRequest<'a> {
    /// Reads the parameters of `grant_type` from the strict form: a missing required one is
    /// `invalid_request`, a malformed `scope` `invalid_scope`.
    fn from_form(grant_type: GrantType, form: &'a FormParams) -> Result<Self, OAuthError> {
        Ok(match grant_type {
            GrantType::AuthorizationCode => Self::AuthorizationCode {
                code: form.require("code")?,
                redirect_uri: form.get("redirect_uri"),
                code_verifier: form.get("code_verifier"),
            },
            GrantType::RefreshToken => Self::RefreshToken {
                refresh_token: form.require("refresh_token")?,
            },
            GrantType::ClientCredentials => Self::ClientCredentials {
                scope: form.get("scope").map(str::parse).transpose().map_err(|_| {
                    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", "malformed scope")
                })?,
            },
            GrantType::DeviceCode => Self::DeviceCode {
                device_code: form.require("device_code")?,
            },
        })
    }
}

/// What the token endpoint and its grants use of the application state.
#[derive(Debug, Clone)]
pub(crate) struct TokenState {
    /// The database, clock and randomness of the grants, and what ending a replayed session
    /// needs (device deletion, the job worker).
    pub(crate) sessions: SessionHandles,
    /// Client secrets at rest (client authentication).
    pub(crate) encrypter: Encrypter,
    /// ID token signing.
    pub(crate) keystore: Arc<Keystore>,
    /// The issuer and the access token lifetime.
    pub(crate) site: Arc<SiteConfig>,
}

impl FromRef<AppState> for TokenState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            sessions: SessionHandles::from_ref(state),
            encrypter: state.encrypter.clone(),
            keystore: state.keystore.clone(),
            site: state.site.clone(),
        }
    }
}

/// `POST /oauth2/token`.
#[tracing::instrument(name = "handlers.oauth2.token.post", skip_all, fields(oauth2_client.id))]
pub(crate) async fn post(
    State(state): State<TokenState>,
    headers: HeaderMap,
    request: ClientAuthorization,
) -> Response {
    match handle(&state, &headers, &request).await {
        Ok(response) => response.into_response(),
        // OAuthError sets no-store itself.
        Err(error) => error.into_response(),
    }
}

/// Client authentication first (the `grant_type` is read before, its parameters after), then
/// the grant.
async fn handle(
    state: &TokenState,
    headers: &HeaderMap,
    request: &ClientAuthorization,
) -> Result<TokenResponse, OAuthError> {
    let credentials = required_credentials(request)?;
    let grant_type = GrantType::from_form(&request.form)?;
    let client = {
        let mut conn = state.sessions.db.acquire().await?;
        credentials
            .authenticate(&mut conn, &state.encrypter)
            .await?
    };
    tracing::Span::current().record("oauth2_client.id", tracing::field::display(client.id));
    grant_type.check_client(&client)?;
    let token_request = TokenRequest::from_form(grant_type, &request.form)?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    match token_request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let grant = authorization_code::Exchange {
                code,
                redirect_uri,
                code_verifier,
                user_agent,
            };
            authorization_code::grant(state, &client, grant).await
        }
        TokenRequest::RefreshToken { refresh_token } => {
            refresh_token::grant(state, &client, refresh_token).await
        }
        TokenRequest::ClientCredentials { scope } => {
            client_credentials::grant(state, &client, scope.unwrap_or_default(), user_agent).await
        }
        TokenRequest::DeviceCode { device_code } => {
            device_code::grant(state, &client, device_code, user_agent).await
        }
    }
}

/// The client's credentials; a request that names no client is 401 `invalid_client` (RFC 6749
/// §5.2; the device authorization endpoint answers the same, RFC 8628 §3.1).
pub(crate) fn required_credentials(
    request: &ClientAuthorization,
) -> Result<&Credentials, OAuthError> {
    request.credentials.as_ref().ok_or_else(|| {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication required",
        )
    })
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
