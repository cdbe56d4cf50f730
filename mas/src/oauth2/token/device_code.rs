//! The device code grant (RFC 8628 §3.4, §3.5; docs/protocol.md#device-authorization-grant):
//! the device polls with its `device_code` until the person has decided.
//!
//! - the code is found by its hash and must belong to this client;
//! - while the person has not decided: `authorization_pending`, or `slow_down` when this poll
//!   comes sooner than [`DEVICE_CODE_MIN_POLL_GAP_MS`] after the previous one (the previous
//!   poll's time is kept, so hammering keeps being refused);
//! - denied: `access_denied`; the codes expired before an exchange: `expired_token`; exchanged
//!   already: `invalid_grant`;
//! - approved: the browser session that approved must still be active and its user usable; the
//!   device of the device scope is created in Synapse **before** anything is stored (503
//!   `temporarily_unavailable` if that fails, and the device may poll again); then the OAuth
//!   session, the exchange mark (conditional: of two racing polls exactly one gets tokens) and
//!   the tokens in one transaction. A refresh token comes when the client registered the
//!   `refresh_token` grant; an ID token with `openid`.

use axum::http::StatusCode;
use rand::{CryptoRng, RngCore};

use super::authorization_code::{consenting_session, provision, sign_id_token};
use super::{TokenPair, TokenResponse, TokenState, invalid_grant};
use crate::crypto::IdTokenClaims;
use crate::crypto::keystore::ID_TOKEN_TTL_SECS;
use crate::crypto::sha256_hex;
use crate::error::OAuthError;
use crate::model::{
    BrowserSession, Client, DEVICE_CODE_MIN_POLL_GAP_MS, DeviceGrant, DeviceGrantStage, NewSession,
};
use crate::storage::{device_grants, oauth2_sessions};

/// A 400 answer of RFC 8628 §3.5.
fn pending_error(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, description)
}

/// One poll of the token endpoint with `device_code`.
pub(super) async fn grant(
    state: &TokenState,
    client: &Client,
    device_code: &str,
    user_agent: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.sessions.clock.now_unix_ms();
    let (grant, browser, auth_time) = {
        let mut conn = state.sessions.db.acquire().await?;
        let grant =
            device_grants::find_device_grant_by_device_code(&mut conn, &sha256_hex(device_code))
                .await?
                .ok_or_else(|| invalid_grant("unknown device code"))?;
        if grant.request.client_id != client.id {
            return Err(invalid_grant(
                "the device code was issued to another client",
            ));
        }
        match grant.stage() {
            DeviceGrantStage::Exchanged => {
                return Err(invalid_grant("the device code was already used"));
            }
            DeviceGrantStage::Rejected => {
                return Err(pending_error(
                    "access_denied",
                    "the request was denied on the approval page",
                ));
            }
            _ if grant.expired(now) => {
                return Err(pending_error(
                    "expired_token",
                    "the device code has expired; start again",
                ));
            }
            DeviceGrantStage::Pending => {
                let on_time = device_grants::record_poll(
                    &mut conn,
                    grant.id,
                    now,
                    DEVICE_CODE_MIN_POLL_GAP_MS,
                )
                .await?;
                return Err(if on_time {
                    pending_error(
                        "authorization_pending",
                        "the request has not been approved yet",
                    )
                } else {
                    pending_error(
                        "slow_down",
                        "polling too often; wait longer between requests",
                    )
                });
            }
            DeviceGrantStage::Fulfilled => {}
        }
        let (browser, auth_time) = consenting_session(&mut conn, grant.user_session_id).await?;
        (grant, browser, auth_time)
    };

    let scope = grant.request.scope.clone();
    if let Some(device_id) = scope.device_id() {
        provision(
            state.sessions.homeserver.as_ref(),
            &browser.user,
            device_id,
            client,
        )
        .await?;
    }
    let mut rng = state.sessions.rng.fork();
    let pair = TokenPair::generate(&mut rng, client.metadata.grant_types.refresh_token);
    let id_token = if scope.has_openid() {
        let claims = IdTokenClaims {
            iss: state.site.issuer.clone(),
            sub: browser.user.sub(),
            aud: client.id.to_string(),
            iat: now / 1000,
            exp: now / 1000 + ID_TOKEN_TTL_SECS,
            nonce: None,
            auth_time: Some(auth_time / 1000),
            at_hash: None,
            c_hash: None,
        };
        Some(sign_id_token(
            &state.keystore,
            &mut rng,
            client,
            claims,
            &pair,
        )?)
    } else {
        None
    };
    store_session(state, &mut rng, client, &grant, &browser, user_agent, &pair).await?;
    let mut response = TokenResponse::new(pair, state.site.access_token_ttl, &scope);
    response.id_token = id_token;
    Ok(response)
}

/// In one transaction: creates the OAuth session, marks the grant exchanged (conditional) and
/// stores the token pair.
async fn store_session(
    state: &TokenState,
    rng: &mut (impl RngCore + CryptoRng),
    client: &Client,
    grant: &DeviceGrant,
    browser: &BrowserSession,
    user_agent: Option<&str>,
    pair: &TokenPair,
) -> Result<(), OAuthError> {
    let clock = state.sessions.clock.as_ref();
    let mut tx = state.sessions.db.begin_write().await?;
    let new = NewSession {
        client_id: client.id,
        user_id: Some(browser.user.id),
        user_session_id: Some(browser.id),
        scope: grant.request.scope.clone(),
        user_agent: user_agent.map(str::to_owned),
        human_name: None,
    };
    let session = oauth2_sessions::create_oauth2_session(&mut tx, clock, rng, new).await?;
    if !device_grants::exchange_device_grant(&mut tx, clock, grant.id, session.id).await? {
        return Err(invalid_grant("the device code was already used"));
    }
    pair.store(&mut tx, clock, rng, session.id, state.site.access_token_ttl)
        .await?;
    tx.commit().await?;
    tracing::info!(
        device_grant.id = %grant.id,
        oauth2_session.id = %session.id,
        user.id = %browser.user.id,
        "device code exchanged"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
