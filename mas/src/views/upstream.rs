//! Login through upstream OpenID providers, the web side (docs/protocol.md#upstream-login;
//! issue 5):
//!
//! - [`authorize`]: `GET /upstream/authorize/{provider_id}` stores a pending authorization
//!   session (state, nonce, PKCE verifier, post-auth action), lists it in the browser's
//!   encrypted `upstream-oauth2-sessions` cookie ([`cookie`]) and redirects to the provider;
//! - [`callback`]: `GET`/`POST /upstream/callback/{provider_id}` checks the state against that
//!   cookie, has the provider client (`crate::upstream`) exchange the code and validate the ID
//!   token, imports the claims and settles the account ([`account`]): a linked user logs in,
//!   a new one is created (user, link, verified email, Synapse provisioning job), or the
//!   person confirms on
//! - [`link`]: `GET`/`POST /upstream/link/{link_id}`, the "create your account" page when
//!   `claims_imports` asks for a confirmation.
//!
//! Every refusal is an HTML page with one `warn` log line naming the provider and a stable
//! `reason` ([`failure`]); nothing (user, link, email, job) is written before all checks
//! passed, in the transaction that also completes the authorization session, so a failed or
//! replayed callback leaves no trace but the pending session.

mod account;
mod authorize;
mod callback;
mod cookie;
mod failure;
mod link;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::routes;

/// The upstream routes (part of the `human` resource).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::UPSTREAM_AUTHORIZE, get(authorize::get))
        .route(
            routes::UPSTREAM_CALLBACK,
            get(callback::get).post(callback::post),
        )
        .route(routes::UPSTREAM_LINK, get(link::get).post(link::post))
}

/// The redirect URI registered at the provider: `<public_base>upstream/callback/<id>`.
fn redirect_uri(state: &AppState, provider_id: &str) -> String {
    state
        .urls
        .absolute(&routes::upstream_callback(provider_id))
        .to_string()
}

#[cfg(test)]
mod tests;
