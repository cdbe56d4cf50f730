//! What the two interactive grants (authorization code, device code) do once their grant has
//! checked out, written once: the approving browser session must still be active with a usable
//! user; the device of the device scope is created in Synapse **before** anything is stored (503
//! `temporarily_unavailable` if that fails, and nothing is created); then, in one transaction,
//! the OAuth session, the grant's exchange mark (conditional: of two racing requests exactly one
//! gets tokens) and the token pair; an ID token with `openid`
//! (docs/protocol.md#authorization-code-grant, #device-authorization-grant).

use axum::http::StatusCode;
use rand::{CryptoRng, RngCore};
use sqlx::AnyConnection;
use ulid::Ulid;

use super::{TokenPair, TokenResponse, TokenState, invalid_grant};
use crate::auth::device::{DeviceError, provision_device};
use crate::crypto::keystore::{ID_TOKEN_TTL_SECS, Keystore};
use crate::crypto::{IdTokenClaims, JwsAlgorithm, oidc_hash};
use crate::error::OAuthError;
use crate::homeserver::HomeserverConnection;
use crate::model::{BrowserSession, Client, NewSession, Scope, User};
use crate::storage::{StorageError, browser_sessions, device_grants, grants, oauth2_sessions};

/// The grant whose tokens are being issued: it is marked exchanged in the same transaction.
#[derive(Debug, Clone, Copy)]
pub(super) enum Exchanged {
    /// An `oauth2_authorization_grants` row.
    AuthorizationCode(Ulid),
    /// An `oauth2_device_code_grants` row.
    DeviceCode(Ulid),
}

impl Exchanged {
    /// Marks the grant exchanged into `session_id`; `false` when another request did first.
    async fn mark(
        self,
        conn: &mut AnyConnection,
        clock: &dyn crate::clock::Clock,
        session_id: Ulid,
    ) -> Result<bool, StorageError> {
        match self {
            Self::AuthorizationCode(id) => {
                grants::exchange_authorization_grant(conn, clock, id, session_id).await
            }
            Self::DeviceCode(id) => {
                device_grants::exchange_device_grant(conn, clock, id, session_id).await
            }
        }
    }

    /// The refusal when another request exchanged it first.
    fn already_used(self) -> OAuthError {
        match self {
            Self::AuthorizationCode(_) => invalid_grant("the code was already used"),
            Self::DeviceCode(_) => invalid_grant("the device code was already used"),
        }
    }
}

/// An approved grant, ready for its tokens.
pub(super) struct Approved<'a> {
    /// The grant, to mark exchanged.
    pub(super) grant: Exchanged,
    /// The client getting the tokens.
    pub(super) client: &'a Client,
    /// The browser session that approved, from [`approving_session`].
    pub(super) browser: &'a BrowserSession,
    /// When its user last authenticated (Unix ms).
    pub(super) auth_time: i64,
    /// The granted scope.
    pub(super) scope: &'a Scope,
    /// The OIDC `nonce` of the request, if it had one.
    pub(super) nonce: Option<&'a str>,
    /// The client's `User-Agent`, recorded on the session.
    pub(super) user_agent: Option<&'a str>,
}

/// Issues the tokens of an approved grant at `now` (Unix ms).
pub(super) async fn issue(
    state: &TokenState,
    approved: Approved<'_>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let Approved {
        client,
        browser,
        scope,
        ..
    } = approved;
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
        let claims = id_token_claims(state, &approved, &browser.user, now);
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
    store_session(state, &mut rng, &approved, &pair).await?;
    let mut response = TokenResponse::new(pair, state.site.access_token_ttl, scope);
    response.id_token = id_token;
    Ok(response)
}

/// The browser session that approved (`user_session_id`, set at approval), still active with a
/// usable user, and when its user last authenticated (Unix ms; the `auth_time` claim).
pub(super) async fn approving_session(
    conn: &mut AnyConnection,
    user_session_id: Option<Ulid>,
) -> Result<(BrowserSession, i64), OAuthError> {
    let user_session_id = user_session_id.ok_or_else(|| invalid_grant("the code is not valid"))?;
    let browser = browser_sessions::find_active_browser_session(conn, user_session_id)
        .await?
        .ok_or_else(|| invalid_grant("the browser session that approved the request has ended"))?;
    if !browser.user.is_valid() {
        return Err(invalid_grant("the account is locked or deactivated"));
    }
    let auth_time = browser_sessions::last_authentication(conn, browser.id)
        .await?
        .map_or(browser.created_at, |authentication| {
            authentication.created_at
        });
    Ok((browser, auth_time))
}

/// The ID token's claims, without the hashes (set once the algorithm is known).
fn id_token_claims(
    state: &TokenState,
    approved: &Approved<'_>,
    user: &User,
    now: i64,
) -> IdTokenClaims {
    IdTokenClaims {
        iss: state.site.issuer.clone(),
        sub: user.sub(),
        aud: approved.client.id.to_string(),
        iat: now / 1000,
        exp: now / 1000 + ID_TOKEN_TTL_SECS,
        nonce: approved.nonce.map(str::to_owned),
        auth_time: Some(approved.auth_time / 1000),
        at_hash: None,
        c_hash: None,
    }
}

/// In one transaction: creates the OAuth session, marks the grant exchanged and stores the
/// token pair.
async fn store_session(
    state: &TokenState,
    rng: &mut (impl RngCore + CryptoRng),
    approved: &Approved<'_>,
    pair: &TokenPair,
) -> Result<(), OAuthError> {
    let clock = state.sessions.clock.as_ref();
    let browser = approved.browser;
    let mut tx = state.sessions.db.begin_write().await?;
    let new = NewSession {
        client_id: approved.client.id,
        user_id: Some(browser.user.id),
        user_session_id: Some(browser.id),
        scope: approved.scope.clone(),
        user_agent: approved.user_agent.map(str::to_owned),
        human_name: None,
    };
    let session = oauth2_sessions::create_oauth2_session(&mut tx, clock, rng, new).await?;
    if !approved.grant.mark(&mut tx, clock, session.id).await? {
        return Err(approved.grant.already_used());
    }
    pair.store(&mut tx, clock, rng, session.id, state.site.access_token_ttl)
        .await?;
    tx.commit().await?;
    match approved.grant {
        Exchanged::AuthorizationCode(id) => tracing::info!(
            grant.id = %id,
            oauth2_session.id = %session.id,
            user.id = %browser.user.id,
            "authorization code exchanged"
        ),
        Exchanged::DeviceCode(id) => tracing::info!(
            device_grant.id = %id,
            oauth2_session.id = %session.id,
            user.id = %browser.user.id,
            "device code exchanged"
        ),
    }
    Ok(())
}

/// Makes sure the homeserver knows `user` and its device `device_id` before anything is stored;
/// if it cannot, 503 `temporarily_unavailable`.
async fn provision(
    homeserver: &dyn HomeserverConnection,
    user: &User,
    device_id: &str,
    client: &Client,
) -> Result<(), OAuthError> {
    provision_device(
        homeserver,
        &user.username,
        device_id,
        client.metadata.client_name.as_deref(),
    )
    .await
    .map_err(|_: DeviceError| {
        OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the homeserver is not available; try again later",
        )
    })
}

/// Signs the ID token (RS256 unless the client registered another algorithm), with the
/// `at_hash` of the new access token.
fn sign_id_token(
    keystore: &Keystore,
    rng: &mut (impl RngCore + CryptoRng),
    client: &Client,
    mut claims: IdTokenClaims,
    pair: &TokenPair,
) -> Result<String, OAuthError> {
    let alg = match client.metadata.id_token_signed_response_alg.as_deref() {
        Some(alg) => alg.parse().map_err(OAuthError::internal)?,
        None => JwsAlgorithm::Rs256,
    };
    claims.at_hash = Some(oidc_hash(alg, pair.access_token()));
    keystore
        .sign_id_token(rng, alg, &claims)
        .map_err(OAuthError::internal)
}
