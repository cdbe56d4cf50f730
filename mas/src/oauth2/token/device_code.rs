//! The device code grant (RFC 8628 §3.4, §3.5; docs/protocol.md#device-authorization-grant):
//! the device polls with its `device_code` until the person has decided.
//!
//! - the code is found by its hash and must belong to this client;
//! - while the person has not decided: `authorization_pending`, or `slow_down` when this poll
//!   comes sooner than [`DEVICE_CODE_MIN_POLL_GAP_MS`] after the previous one (the previous
//!   poll's time is kept, so hammering keeps being refused);
//! - denied: `access_denied`; the codes expired before an exchange: `expired_token`; exchanged
//!   already: `invalid_grant`;
//! - approved: the tokens, as [`super::issue`] issues them for both interactive grants (a 503
//!   from the homeserver stores nothing, and the device may poll again). A refresh token comes
//!   when the client registered the `refresh_token` grant; an ID token (no `nonce`) with
//!   `openid`.

use axum::http::StatusCode;

use super::issue::{Approved, Exchanged, approving_session, issue};
use super::{TokenResponse, TokenState, invalid_grant};
use crate::crypto::sha256_hex;
use crate::error::OAuthError;
use crate::model::{Client, DEVICE_CODE_MIN_POLL_GAP_MS, DeviceGrantStage};
use crate::storage::device_grants;

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
        let (browser, auth_time) = approving_session(&mut conn, grant.user_session_id).await?;
        (grant, browser, auth_time)
    };
    let approved = Approved {
        grant: Exchanged::DeviceCode(grant.id),
        client,
        browser: &browser,
        auth_time,
        scope: &grant.request.scope,
        nonce: None,
        user_agent,
    };
    issue(state, approved, now).await
}

#[cfg(test)]
mod tests;
