//! The OAuth 2.0 / OpenID Connect provider (RFC 6749, OpenID Connect Core; docs/protocol.md):
//! discovery, the JWKS, dynamic client registration, the token endpoint and its grants,
//! introspection for Synapse, revocation and userinfo. The browser side (`/authorize`, consent, the
//! scope policy) lives here too but belongs to the human route group.
//!
//! This module assembles the two route groups ([`discovery_router`], [`api_router`]: a
//! permissive CORS layer and a 64 KiB body limit) and owns [`SessionEnder`], the one way to end
//! an OAuth session so that its Synapse device goes with it.

pub mod authorize;
pub mod consent;
pub mod discovery;
pub mod introspection;
pub mod keys;
pub mod policy;
pub mod registration;
pub mod revoke;
pub mod token;
pub mod userinfo;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, post};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};
use ulid::Ulid;

use crate::app::AppState;
use crate::clock::Clock;
use crate::homeserver::HomeserverConnection;
use crate::jobs::{self, Job, JobWaker};
use crate::rng::RngSource;
use crate::routes;
use crate::storage::{Database, StorageError, oauth2_sessions, users};

/// The largest request body the OAuth API reads (forms and registration JSON are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `discovery` resource: provider metadata and WebFinger.
pub(crate) fn discovery_router() -> Router<AppState> {
    Router::new()
        .route(routes::OIDC_DISCOVERY, get(discovery::get))
        .route(routes::WEBFINGER, get(discovery::webfinger))
        .layer(cors())
}

/// The `oauth` resource: the `/oauth2/*` API.
pub(crate) fn api_router() -> Router<AppState> {
    Router::new()
        .route(routes::OAUTH2_KEYS, get(keys::get))
        .route(routes::OAUTH2_TOKEN, post(token::post))
        .route(routes::OAUTH2_REGISTRATION, post(registration::post))
        .route(routes::OAUTH2_INTROSPECT, post(introspection::post))
        .route(routes::OAUTH2_REVOKE, post(revoke::post))
        .route(
            routes::OAUTH2_USERINFO,
            get(userinfo::get).post(userinfo::post),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(cors())
}

/// A permissive CORS layer (upstream serves the OAuth API with one): any origin, no
/// credentials (the API uses no cookies), the request's headers allowed; preflight requests
/// are answered here (Fetch standard, "CORS protocol").
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(86_400))
}

/// Ends OAuth 2.0 sessions the way every caller must (revocation, a replayed code, logout,
/// `manage kill-sessions`, locking): finish the session in the database, then delete its
/// device in the homeserver at once, so that Synapse stops honouring the tokens (its
/// introspection cache only forgets a token when the device goes). When the homeserver call
/// fails, a `sync-devices` job is queued instead: the deletion is never lost.
#[derive(Debug, Clone, Copy)]
pub struct SessionEnder<'a> {
    /// The database.
    pub db: &'a Database,
    /// The injected clock.
    pub clock: &'a dyn Clock,
    /// The injected randomness (for the job's id).
    pub rng: &'a RngSource,
    /// The homeserver.
    pub homeserver: &'a dyn HomeserverConnection,
    /// Wakes the job worker after queueing.
    pub jobs: &'a JobWaker,
}

impl<'a> SessionEnder<'a> {
    /// The ender of the application's state.
    pub fn from_state(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            clock: state.clock.as_ref(),
            rng: &state.rng,
            homeserver: state.homeserver.as_ref(),
            jobs: &state.jobs,
        }
    }

    /// Ends the session `id`. Returns `false` when it was already finished or does not exist
    /// (nothing is done then). A device that another active session of the same user still
    /// holds is left in place.
    #[tracing::instrument(name = "oauth2.session.end", skip_all, fields(oauth2_session.id = %id), err)]
    pub async fn end(&self, id: Ulid) -> Result<bool, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let Some(session) = oauth2_sessions::find_oauth2_session(&mut tx, id).await? else {
            return Ok(false);
        };
        if !oauth2_sessions::finish_oauth2_session(&mut tx, self.clock, id).await? {
            return Ok(false);
        }
        // The user and whether another active session still uses the device, read in the
        // same transaction as the finish.
        let target = match (session.user_id, session.scope.device_id()) {
            (Some(user_id), Some(device_id)) => {
                let user = users::find_user(&mut tx, user_id).await?;
                let others = oauth2_sessions::list_active_oauth2_sessions(&mut tx, user_id).await?;
                let shared = others
                    .iter()
                    .any(|other| other.scope.device_id() == Some(device_id));
                user.filter(|_| !shared)
                    .map(|user| (user, device_id.to_owned()))
            }
            _ => None,
        };
        tx.commit().await?;

        let Some((user, device_id)) = target else {
            return Ok(true);
        };
        if let Err(error) = self
            .homeserver
            .delete_device(&user.username, &device_id)
            .await
        {
            tracing::warn!(
                user.id = %user.id,
                device.id = %device_id,
                error = &error as &dyn std::error::Error,
                "deleting the device failed; queueing a device sync"
            );
            let mut rng = self.rng.fork();
            let mut tx = self.db.begin_write().await?;
            jobs::queue(
                &mut tx,
                self.clock,
                &mut rng,
                &Job::SyncDevices { user_id: user.id },
            )
            .await?;
            tx.commit().await?;
            self.jobs.wake();
        }
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
