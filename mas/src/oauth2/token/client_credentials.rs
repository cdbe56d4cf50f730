//! The `client_credentials` grant (RFC 6749 §4.4; docs/protocol.md#client-credentials-grant): a
//! confidential client gets an access token for itself, in a session without a user, and no refresh
//! token. Matrix scopes need a user and an interactive grant, so they are refused here, as is
//! `urn:mas:admin` (no `policy.data.admin_clients` yet).

use axum::http::StatusCode;

use super::{TokenPair, TokenResponse, TokenState};
use crate::error::OAuthError;
use crate::model::scope::MAS_ADMIN;
use crate::model::{Client, NewSession, Scope};
use crate::storage::oauth2_sessions;

/// Whether a client_credentials session may carry `token` (docs/protocol.md#scopes-and-policy).
fn allowed_without_user(token: &str) -> bool {
    !(token.starts_with("urn:matrix:") || token.starts_with("urn:synapse:") || token == MAS_ADMIN)
}

/// Issues a token to the client itself (a confidential one: the handler checked that).
pub(super) async fn grant(
    state: &TokenState,
    client: &Client,
    scope: Scope,
    user_agent: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if !scope
        .iter()
        .all(|token| allowed_without_user(token.as_str()))
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "this scope needs a user; it cannot be granted to a client alone",
        ));
    }

    let clock = state.sessions.clock.as_ref();
    let mut rng = state.sessions.rng.fork();
    let ttl = state.site.access_token_ttl;
    let pair = TokenPair::generate(&mut rng, false);
    let mut tx = state.sessions.db.begin_write().await?;
    let new = NewSession {
        client_id: client.id,
        user_id: None,
        user_session_id: None,
        scope: scope.clone(),
        user_agent: user_agent.map(str::to_owned),
        human_name: None,
    };
    let session = oauth2_sessions::create_oauth2_session(&mut tx, clock, &mut rng, new).await?;
    pair.store(&mut tx, clock, &mut rng, session.id, ttl)
        .await?;
    tx.commit().await?;
    Ok(TokenResponse::new(pair, ttl, &scope))
}

#[cfg(test)]
mod tests;
