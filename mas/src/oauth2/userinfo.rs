//! `GET`/`POST /oauth2/userinfo` (OpenID Connect Core §5.3; docs/protocol.md#userinfo): who the
//! bearer of an access token is, as `{sub, username}`. The session must have the `openid` scope. A
//! client that registered `userinfo_signed_response_alg` gets the claims as a signed JWT
//! (`application/jwt`) with `iss` and `aud` added.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{AppState, SiteConfig};
use crate::clock::Clock;
use crate::crypto::keystore::Keystore;
use crate::crypto::{JwsAlgorithm, TokenKind, sha256_hex};
use crate::error::OAuthError;
use crate::extract::bearer::Bearer;
use crate::rng::RngSource;
use crate::storage::{Database, clients, introspection};

/// The claims returned.
#[derive(Debug, Serialize)]
struct UserInfo {
    sub: String,
    username: String,
}

/// The claims of a signed answer.
#[derive(Debug, Serialize)]
struct SignedUserInfo<'a> {
    iss: &'a str,
    aud: String,
    #[serde(flatten)]
    claims: UserInfo,
}

/// Why the request was refused (RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    MissingToken,
    /// Unknown, expired or revoked token, or an ended session or unusable account.
    #[error("the access token is not valid")]
    InvalidToken,
    /// The session lacks the `openid` scope.
    #[error("the openid scope is required")]
    InsufficientScope,
    /// Unexpected.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl IntoResponse for RouteError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let (status, code, challenge) = match self {
            Self::Internal(error) => return OAuthError::internal(error).into_response(),
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "invalid_token", "Bearer"),
            Self::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Bearer error=\"invalid_token\"",
            ),
            Self::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Bearer error=\"insufficient_scope\", scope=\"openid\"",
            ),
        };
        let mut response = OAuthError::new(status, code, description).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

impl From<crate::storage::StorageError> for RouteError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<sqlx::Error> for RouteError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(Box::new(error))
    }
}

/// `GET /oauth2/userinfo`.
#[tracing::instrument(name = "handlers.oauth2.userinfo.get", skip_all)]
pub async fn get(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(signer): State<Signer>,
    bearer: Bearer,
) -> Result<Response, RouteError> {
    userinfo(&db, clock.as_ref(), &signer, bearer).await
}

/// `POST /oauth2/userinfo` (same as GET; the token must be in the header).
#[tracing::instrument(name = "handlers.oauth2.userinfo.post", skip_all)]
pub async fn post(
    State(db): State<Database>,
    State(clock): State<Arc<dyn Clock>>,
    State(signer): State<Signer>,
    bearer: Bearer,
) -> Result<Response, RouteError> {
    userinfo(&db, clock.as_ref(), &signer, bearer).await
}

/// What a signed answer needs: the keys, randomness for signing, and the issuer.
#[derive(Debug, Clone)]
pub struct Signer {
    keystore: Arc<Keystore>,
    rng: RngSource,
    site: Arc<SiteConfig>,
}

impl FromRef<AppState> for Signer {
    fn from_ref(state: &AppState) -> Self {
        Self {
            keystore: state.keystore.clone(),
            rng: state.rng.clone(),
            site: state.site.clone(),
        }
    }
}

async fn userinfo(
    db: &Database,
    clock: &dyn Clock,
    signer: &Signer,
    Bearer(token): Bearer,
) -> Result<Response, RouteError> {
    let token = token.ok_or(RouteError::MissingToken)?;
    if TokenKind::from_token(&token) != Some(TokenKind::AccessToken) {
        return Err(RouteError::InvalidToken);
    }
    let mut conn = db.pool().acquire().await?;
    let found =
        introspection::lookup_access_token_for_introspection(&mut conn, &sha256_hex(&token))
            .await?
            .ok_or(RouteError::InvalidToken)?;
    let now = clock.now_unix_ms();
    let user = found
        .user
        .filter(|user| user.is_valid())
        .ok_or(RouteError::InvalidToken)?;
    if !found.token.is_valid(now) || !found.session.is_active() {
        return Err(RouteError::InvalidToken);
    }
    if !found.session.scope.has_openid() {
        return Err(RouteError::InsufficientScope);
    }
    let claims = UserInfo {
        sub: user.sub(),
        username: user.username,
    };
    let client = clients::find_client(&mut conn, found.session.client_id).await?;
    let alg = client
        .as_ref()
        .and_then(|client| client.metadata.userinfo_signed_response_alg.as_deref());
    let Some(alg) = alg else {
        return Ok(Json(claims).into_response());
    };
    let alg: JwsAlgorithm = alg
        .parse()
        .map_err(|error: crate::crypto::JwtError| RouteError::Internal(error.into()))?;
    let signed = SignedUserInfo {
        iss: &signer.site.issuer,
        aud: found.session.client_id.to_string(),
        claims,
    };
    let jwt = signer
        .keystore
        .sign(&mut signer.rng.fork(), alg, &signed)
        .map_err(|error| RouteError::Internal(error.into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwt"),
        )],
        jwt,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
