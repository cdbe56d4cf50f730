//! `POST /oauth2/device`, the device authorization endpoint (RFC 8628 §3.1, §3.2;
//! docs/protocol.md#device-authorization-grant). A client that registered the device code grant
//! authenticates as at the token endpoint (a public client sends its `client_id`) and asks for a
//! `scope`; it gets a `device_code` to poll the token endpoint with, a `user_code` for the person,
//! and the page where the person enters it.
//!
//! Anyone can call it, and each call stores a grant, so calls are rate-limited per client address
//! ([`DEVICE_AUTHORIZATION_PER_IP`](crate::ratelimit::Quota::DEVICE_AUTHORIZATION_PER_IP)) before
//! anything is read. The device code is 32 alphanumerics stored as SHA-256; the user code is 8
//! characters without look-alikes, shown as `ABCD-EFGH`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::clock::Clock;
use crate::crypto::{Encrypter, random, sha256_hex};
use crate::error::OAuthError;
use crate::extract::client_auth::ClientAuthorization;
use crate::extract::client_ip::ClientIp;
use crate::model::{
    DEVICE_CODE_LIFETIME_MS, DEVICE_CODE_POLL_INTERVAL_SECS, DeviceGrant, NewDeviceGrant, Scope,
};
use crate::oauth2::token::{GrantType, required_credentials};
use crate::ratelimit::RateLimiter;
use crate::rng::RngSource;
use crate::routes::{self, UrlBuilder};
use crate::storage::{Database, StorageError, device_grants};

/// New codes are drawn this many times when the ones drawn are taken (a user code collision is
/// about one in 2^40 per live grant).
const ATTEMPTS: usize = 3;

/// What the endpoint uses of the application state.
#[derive(Debug, Clone)]
pub(crate) struct DeviceAuthorizationState {
    db: Database,
    clock: Arc<dyn Clock>,
    rng: RngSource,
    /// Client secrets at rest (client authentication).
    encrypter: Encrypter,
    /// The per-address limit.
    limiter: RateLimiter,
    /// The `verification_uri`.
    urls: UrlBuilder,
}

impl FromRef<AppState> for DeviceAuthorizationState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            encrypter: state.encrypter.clone(),
            limiter: state.limiter.clone(),
            urls: state.urls.clone(),
        }
    }
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Serialize)]
struct DeviceAuthorizationResponse {
    device_code: String,
    /// As people see it, `ABCD-EFGH`.
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// `POST /oauth2/device`.
#[tracing::instrument(
    name = "handlers.oauth2.device.authorization.post",
    skip_all,
    fields(oauth2_client.id)
)]
pub(crate) async fn post(
    State(state): State<DeviceAuthorizationState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    request: ClientAuthorization,
) -> Response {
    let now = state.clock.now_unix_ms();
    if let Err(limited) = state.limiter.check_device_authorization(ip, now) {
        tracing::info!(client.ip = ?ip, "device authorization refused: too many from this address");
        let error = OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            format!(
                "too many device authorization requests from this address; retry in {} s",
                limited.retry_after_secs()
            ),
        );
        return limited.respond(error);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let ip = ip.map(|ip| ip.to_string());
    match handle(&state, &request, ip, user_agent).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &DeviceAuthorizationState,
    request: &ClientAuthorization,
    ip_address: Option<String>,
    user_agent: Option<&str>,
) -> Result<Response, OAuthError> {
    let credentials = required_credentials(request)?;
    let mut conn = state.db.acquire().await?;
    let client = credentials
        .authenticate(&mut conn, &state.encrypter)
        .await?;
    tracing::Span::current().record("oauth2_client.id", tracing::field::display(client.id));
    GrantType::DeviceCode.check_client(&client)?;
    let scope: Scope = request
        .form
        .get("scope")
        .unwrap_or_default()
        .parse()
        .map_err(|_| {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", "malformed scope")
        })?;

    let mut rng = state.rng.fork();
    let mut attempt = 0;
    let (grant, device_code) = loop {
        attempt += 1;
        let device_code = random::device_code(&mut rng);
        let new = NewDeviceGrant {
            client_id: client.id,
            scope: scope.clone(),
            device_code_sha256: sha256_hex(&device_code),
            user_code: random::user_code(&mut rng),
            ip_address: ip_address.clone(),
            user_agent: user_agent.map(str::to_owned),
        };
        match device_grants::add_device_grant(&mut conn, state.clock.as_ref(), &mut rng, new).await
        {
            Ok(grant) => break (grant, device_code),
            Err(StorageError::TokenCollision) if attempt < ATTEMPTS => {}
            Err(error) => return Err(error.into()),
        }
    };
    tracing::info!(device_grant.id = %grant.id, "device authorization requested");
    let mut response = Json(answer(&state.urls, &grant, device_code)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The answer for a stored grant: the code page, with and without the code filled in.
fn answer(
    urls: &UrlBuilder,
    grant: &DeviceGrant,
    device_code: String,
) -> DeviceAuthorizationResponse {
    let user_code = grant.display_user_code();
    let verification_uri = urls.absolute(routes::LINK);
    let mut complete = verification_uri.clone();
    complete.query_pairs_mut().append_pair("code", &user_code);
    DeviceAuthorizationResponse {
        device_code,
        user_code,
        verification_uri: verification_uri.to_string(),
        verification_uri_complete: complete.to_string(),
        expires_in: u64::try_from(DEVICE_CODE_LIFETIME_MS / 1000).unwrap_or(600),
        interval: DEVICE_CODE_POLL_INTERVAL_SECS,
    }
}

#[cfg(test)]
mod tests;
