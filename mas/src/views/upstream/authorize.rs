//! `GET /upstream/authorize/{provider_id}` (docs/protocol.md#upstream-login): starts a login at an
//! upstream provider. A fresh `state`, `nonce` and PKCE verifier are stored in a pending
//! authorization session with the post-auth action of the query (`kind`, `id`); the session is
//! listed in the browser's `upstream-oauth2-sessions` cookie and the browser goes to the provider
//! (303). A provider that cannot be reached (discovery) is a 502 page; nothing is stored then.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::cookie::UpstreamSessions;
use super::{UpstreamState, failure, redirect_uri};
use crate::auth::post_auth::PostAuthAction;
use crate::crypto::random;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::client_ip::ClientIp;
use crate::extract::params::{ParamsError, StrictQuery};
use crate::pages::bad_query;
use crate::ratelimit::RateLimiter;
use crate::storage::upstream_sessions::{self, NewUpstreamSession};
use crate::upstream::AuthorizationParams;

/// Length of the random `state` and `nonce`.
const STATE_LENGTH: usize = 32;
/// Length of the PKCE verifier (RFC 7636 §4.1: 43 to 128 characters).
const VERIFIER_LENGTH: usize = 64;

/// The query: the post-auth action and an optional `login_hint`.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    kind: Option<String>,
    id: Option<String>,
    login_hint: Option<String>,
}

/// `GET /upstream/authorize/{provider_id}`. Each request stores a session (and may fetch the
/// provider's discovery document), so they are rate-limited per client address
/// ([`UPSTREAM_AUTHORIZE_PER_IP`](crate::ratelimit::Quota::UPSTREAM_AUTHORIZE_PER_IP)): an
/// error page, 429, with `Retry-After`.
#[tracing::instrument(
    name = "handlers.upstream.authorize.get",
    skip_all,
    fields(provider = %provider_id)
)]
pub(super) async fn get(
    State(state): State<UpstreamState>,
    State(limiter): State<RateLimiter>,
    ClientIp(ip): ClientIp,
    mut jar: CookieJar,
    Path(provider_id): Path<String>,
    query: Result<StrictQuery<AuthorizeQuery>, ParamsError>,
) -> Result<Response, HtmlError> {
    if let Err(limited) = limiter.check_upstream_authorize(ip, state.clock.now_unix_ms()) {
        tracing::info!(client.ip = ?ip, "upstream login refused: too many from this address");
        let error = HtmlError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts",
            format!(
                "Too many sign-ins were started from your network. Wait {} seconds and try again.",
                limited.retry_after_secs()
            ),
        );
        return Ok(limited.respond(error));
    }
    let StrictQuery(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let provider = state
        .providers
        .get(&provider_id)
        .ok_or_else(|| failure::unknown_provider(&provider_id))?;
    let action = PostAuthAction::from_fields(query.kind.as_deref(), query.id.as_deref());
    let mut rng = state.rng.fork();
    let state_value = random::alphanumeric(&mut rng, STATE_LENGTH);
    let nonce = random::alphanumeric(&mut rng, STATE_LENGTH);
    let verifier = random::alphanumeric(&mut rng, VERIFIER_LENGTH);
    let redirect_uri = redirect_uri(&state.urls, &provider.id);
    let request = provider
        .authorization_url(AuthorizationParams {
            redirect_uri: &redirect_uri,
            state: &state_value,
            nonce: &nonce,
            code_verifier: &verifier,
            login_hint: query.login_hint.as_deref(),
        })
        .await
        .map_err(|error| failure::upstream_error(provider, &error))?;

    let action_json = action.as_ref().map(PostAuthAction::to_json);
    let mut conn = state.db.acquire().await?;
    let session = upstream_sessions::add_upstream_session(
        &mut conn,
        state.clock.as_ref(),
        &mut rng,
        NewUpstreamSession {
            provider_id: &provider.id,
            state: &state_value,
            nonce: &nonce,
            code_verifier: request.pkce.then_some(verifier.as_str()),
            post_auth_action: action_json.as_ref(),
        },
    )
    .await?;
    let now = state.clock.now_unix_ms();
    let mut sessions = UpstreamSessions::load(&jar, now);
    sessions.add(session.id, &provider.id, &state_value, now);
    sessions
        .save(&mut jar, &mut rng)
        .map_err(HtmlError::internal)?;
    tracing::info!(
        upstream_oauth_authorization_session.id = %session.id,
        pkce = request.pkce,
        "upstream login started"
    );
    Ok((jar, Redirect::to(request.url.as_str())).into_response())
}
