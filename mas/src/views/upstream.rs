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

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;

use crate::app::{AppState, SiteConfig};
use crate::clock::Clock;
use crate::homeserver::HomeserverConnection;
use crate::jobs::JobWaker;
use crate::rng::RngSource;
use crate::routes::{self, UrlBuilder};
use crate::storage::Database;
use crate::upstream::UpstreamProviders;

/// The parts of the state an upstream login uses: the providers, and what settling the
/// account and starting the browser session need.
#[derive(Debug, Clone)]
struct UpstreamState {
    /// The database pool.
    db: Database,
    /// The injected clock.
    clock: Arc<dyn Clock>,
    /// The injected randomness.
    rng: RngSource,
    /// Public URLs.
    urls: UrlBuilder,
    /// The homeserver (is a username free there?).
    homeserver: Arc<dyn HomeserverConnection>,
    /// Wakes the job worker after a provisioning job was queued.
    jobs: JobWaker,
    /// The server name (the length of a Matrix ID).
    site: Arc<SiteConfig>,
    /// The enabled upstream providers.
    providers: UpstreamProviders,
}

impl FromRef<AppState> for UpstreamState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            urls: state.urls.clone(),
            homeserver: state.homeserver.clone(),
            jobs: state.jobs.clone(),
            site: state.site.clone(),
            providers: state.upstream.clone(),
        }
    }
}

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
fn redirect_uri(urls: &UrlBuilder, provider_id: &str) -> String {
    urls.absolute(&routes::upstream_callback(provider_id))
        .to_string()
}

#[cfg(test)]
mod tests;
