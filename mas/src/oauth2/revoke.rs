//! `POST /oauth2/revoke` (RFC 7009, MSC4254; docs/protocol.md#revocation). Revoking an access or a
//! refresh token ends its **whole session**, and the session's device is deleted in Synapse at once
//! (through [`SessionEnder`]), so that Synapse's introspection cache cannot keep the token alive.
//!
//! The client authenticates as at the token endpoint. Unknown, malformed or already revoked
//! tokens still get 200 (RFC 7009 §2.2). The success answer is 200 with an empty body and
//! **no content type** (some clients, e.g. oidc-client-ts, reject `text/plain`).

use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ulid::Ulid;

use crate::app::AppState;
use crate::auth::sessions::{SessionEnder, SessionHandles};
use crate::crypto::{Encrypter, TokenKind, sha256_hex};
use crate::error::OAuthError;
use crate::extract::client_auth::ClientAuthorization;
use crate::storage::introspection;

/// Why the request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No client credentials at all.
    #[error("client authentication required")]
    Unauthenticated,
    /// `token_type_hint` is neither `access_token` nor `refresh_token`.
    #[error("unsupported token_type_hint")]
    UnsupportedTokenType,
    /// The token was issued to another client.
    #[error("the token was not issued to this client")]
    OtherClient,
}

impl From<RouteError> for OAuthError {
    fn from(error: RouteError) -> Self {
        let (status, code) = match error {
            RouteError::Unauthenticated => (StatusCode::UNAUTHORIZED, "invalid_client"),
            RouteError::UnsupportedTokenType => (StatusCode::BAD_REQUEST, "unsupported_token_type"),
            RouteError::OtherClient => (StatusCode::BAD_REQUEST, "unauthorized_client"),
        };
        Self::new(status, code, error.to_string())
    }
}

/// What revocation uses of the application state: client authentication and ending a session
/// with its device.
#[derive(Debug, Clone)]
pub(crate) struct RevokeState {
    sessions: SessionHandles,
    encrypter: Encrypter,
}

impl FromRef<AppState> for RevokeState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            sessions: SessionHandles::from_ref(state),
            encrypter: state.encrypter.clone(),
        }
    }
}

/// `POST /oauth2/revoke`.
#[tracing::instrument(name = "handlers.oauth2.revoke.post", skip_all)]
pub(crate) async fn post(
    State(state): State<RevokeState>,
    request: ClientAuthorization,
) -> Result<Response, OAuthError> {
    let credentials = request
        .credentials
        .as_ref()
        .ok_or(RouteError::Unauthenticated)?;
    let token = request.form.require("token")?;
    match request.form.get("token_type_hint") {
        None | Some("access_token" | "refresh_token") => {}
        Some(_) => return Err(RouteError::UnsupportedTokenType.into()),
    }
    let mut conn = state.sessions.db.acquire().await?;
    let client = credentials
        .authenticate(&mut conn, &state.encrypter)
        .await?;

    let hash = sha256_hex(token);
    let session = match TokenKind::from_token(token) {
        Some(TokenKind::AccessToken) => {
            introspection::lookup_access_token_for_introspection(&mut conn, &hash)
                .await?
                .map(|found| found.session)
        }
        Some(TokenKind::RefreshToken) => {
            introspection::lookup_refresh_token_for_introspection(&mut conn, &hash)
                .await?
                .map(|found| found.session)
        }
        // Not a token we issue here (or not a token at all): nothing to revoke.
        _ => None,
    };
    drop(conn);
    if let Some(session) = session {
        if session.client_id != client.id {
            return Err(RouteError::OtherClient.into());
        }
        end_session(state.sessions.ender(), session.id).await?;
    }
    Ok(revoked())
}

/// Ends the session and its device (see [`SessionEnder`]).
async fn end_session(ender: SessionEnder<'_>, session_id: Ulid) -> Result<(), OAuthError> {
    let ended = ender.end_oauth2_session(session_id).await?;
    if ended {
        tracing::info!(oauth2_session.id = %session_id, "session revoked");
    }
    Ok(())
}

/// 200, empty body, no `Content-Type`, not cacheable.
fn revoked() -> Response {
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
