//! The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636;
//! docs/protocol.md#authorization-code-grant):
//!
//! - the code is found by its hash, must belong to this client, be fulfilled and not older
//!   than 10 minutes after consent, and works once. A second exchange is `invalid_grant`, and
//!   if it comes more than 20 s after the first, the session the first one created is ended
//!   (the code is presumed stolen);
//! - `redirect_uri` must repeat the authorization request's, if that one carried it;
//! - PKCE: `S256` is required for public clients; `plain` only for confidential ones;
//! - the browser session that consented must still be active and its user usable;
//! - the OAuth session is created here. With a device scope, the device is upserted in
//!   Synapse **before** anything is stored (provisioning the user first if Synapse does not
//!   know it); if that fails the answer is 503 `temporarily_unavailable` and nothing is
//!   created;
//! - an ID token (RS256 unless the client asked otherwise) comes with `openid`.
//!
//! The last three steps are shared with the device code grant ([`super::issue`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use url::Url;

use sqlx::AnyConnection;

use super::issue::{Approved, Exchanged, approving_session, issue};
use super::{TokenResponse, TokenState, invalid_grant};
use crate::auth::sessions::SessionEnder;
use crate::crypto::sha256_hex;
use crate::error::OAuthError;
use crate::model::{
    AuthorizationGrant, BrowserSession, Client, CodeChallenge, CodeChallengeMethod, GrantStage,
    NewAuthorizationGrant,
};
use crate::storage::grants;

/// A second exchange later than this after the first ends the first one's session.
pub const REPLAY_GRACE_MS: i64 = 20_000;

/// The parameters of an `authorization_code` token request (RFC 6749 §4.1.3), and the
/// `User-Agent` the new session records.
pub(super) struct Exchange<'a> {
    /// The code.
    pub(super) code: &'a str,
    /// Must repeat the authorization request's, when it carried one.
    pub(super) redirect_uri: Option<&'a str>,
    /// The PKCE verifier (RFC 7636 §4.5).
    pub(super) code_verifier: Option<&'a str>,
    /// The client's `User-Agent` header.
    pub(super) user_agent: Option<&'a str>,
}

/// Exchanges a code for tokens.
pub(super) async fn grant(
    state: &TokenState,
    client: &Client,
    exchange: Exchange<'_>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.sessions.clock.now_unix_ms();
    let (grant, browser, auth_time) = redeemable_code(state, client, &exchange, now).await?;
    let approved = Approved {
        grant: Exchanged::AuthorizationCode(grant.id),
        client,
        browser: &browser,
        auth_time,
        scope: &grant.request.scope,
        nonce: grant.request.nonce.as_deref(),
        user_agent: exchange.user_agent,
    };
    issue(state, approved, now).await
}

/// The code's grant once every check passed (client, stage, `redirect_uri`, PKCE), with the
/// browser session that consented and its `auth_time`. A replayed code ends the session the
/// first exchange created before it is refused.
async fn redeemable_code(
    state: &TokenState,
    client: &Client,
    exchange: &Exchange<'_>,
    now: i64,
) -> Result<(AuthorizationGrant, BrowserSession, i64), OAuthError> {
    let mut conn = state.sessions.db.acquire().await?;
    let grant = find_code(&mut conn, client, exchange.code).await?;
    if let Err(error) = check_stage(&grant, now) {
        drop(conn);
        end_first_session_if_replayed(state.sessions.ender(), &grant, now).await?;
        return Err(error);
    }
    check_redirect_uri(&grant.request, exchange.redirect_uri)?;
    verify_pkce(
        client.is_public(),
        grant.request.code_challenge.as_ref(),
        exchange.code_verifier,
    )?;
    let (browser, auth_time) = approving_session(&mut conn, grant.user_session_id).await?;
    Ok((grant, browser, auth_time))
}

/// The grant of `code`, which must have been issued to `client`.
async fn find_code(
    conn: &mut AnyConnection,
    client: &Client,
    code: &str,
) -> Result<AuthorizationGrant, OAuthError> {
    let grant = grants::find_authorization_grant_by_code(conn, &sha256_hex(code))
        .await?
        .ok_or_else(|| invalid_grant("unknown authorization code"))?;
    if grant.request.client_id != client.id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    Ok(grant)
}

/// The code must be fulfilled (consented to), not yet exchanged, and not expired at `now`.
fn check_stage(grant: &AuthorizationGrant, now: i64) -> Result<(), OAuthError> {
    match grant.stage() {
        GrantStage::Fulfilled => {}
        GrantStage::Exchanged => return Err(invalid_grant("the code was already used")),
        GrantStage::Pending | GrantStage::Cancelled => {
            return Err(invalid_grant("the code is not valid"));
        }
    }
    if grant.code_expired(now) {
        return Err(invalid_grant("the code has expired"));
    }
    Ok(())
}

/// RFC 6749 §4.1.2: a code used twice is presumed stolen. More than [`REPLAY_GRACE_MS`] after
/// the first exchange, the session that exchange created is ended.
async fn end_first_session_if_replayed(
    ender: SessionEnder<'_>,
    grant: &AuthorizationGrant,
    now: i64,
) -> Result<(), OAuthError> {
    if grant.stage() != GrantStage::Exchanged {
        return Ok(());
    }
    if let (Some(exchanged_at), Some(session_id)) = (grant.exchanged_at, grant.session_id)
        && now - exchanged_at > REPLAY_GRACE_MS
    {
        tracing::warn!(
            grant.id = %grant.id,
            oauth2_session.id = %session_id,
            "authorization code replayed; ending the session it created"
        );
        ender.end_oauth2_session(session_id).await?;
    }
    Ok(())
}

/// RFC 6749 §4.1.3: `redirect_uri` is required when the authorization request carried it,
/// and must then be identical; when the request left it out (the client's only registered
/// URI was used), it is optional but, if given, must still be that URI. Both sides are
/// compared as parsed URLs.
fn check_redirect_uri(
    request: &NewAuthorizationGrant,
    given: Option<&str>,
) -> Result<(), OAuthError> {
    match given {
        None if request.redirect_uri_explicit => Err(invalid_grant(
            "redirect_uri is required: the authorization request included it",
        )),
        None => Ok(()),
        Some(given) if Url::parse(given).ok().as_ref() == Some(&request.redirect_uri) => Ok(()),
        Some(_) => Err(invalid_grant(
            "redirect_uri does not match the authorization request",
        )),
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the PKCE verifier against the grant's challenge (RFC 7636 §4.6) and our rule that public
/// clients must use `S256` (RFC 7636 allows `plain`; we only accept it from confidential ones).
pub(crate) fn verify_pkce(
    public_client: bool,
    challenge: Option<&CodeChallenge>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, _) if public_client => Err(invalid_grant("PKCE is required for public clients")),
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "code_verifier given, but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_request(
            "missing parameter `code_verifier`",
        )),
        (Some(challenge), Some(verifier)) => {
            if !is_valid_verifier(verifier) {
                return Err(OAuthError::invalid_request("malformed code_verifier"));
            }
            let matches = match challenge.method {
                CodeChallengeMethod::S256 => {
                    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                        == challenge.challenge
                }
                CodeChallengeMethod::Plain if public_client => {
                    return Err(invalid_grant(
                        "public clients must use the S256 PKCE method",
                    ));
                }
                CodeChallengeMethod::Plain => verifier == challenge.challenge,
            };
            if matches {
                Ok(())
            } else {
                Err(invalid_grant("PKCE verification failed"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
