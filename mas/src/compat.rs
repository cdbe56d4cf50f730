//! The Matrix compat layer (docs/protocol.md#compat-layer): the legacy client-server login API that
//! Synapse stops serving when MAS is on. The router rewrites
//! `/_matrix/client/{v}/(login|logout|refresh)` to `/auth/…`, so these routes live under the
//! listener prefix. Sessions and tokens are in `storage::compat`; errors are Matrix JSON
//! ([`MatrixError`](crate::error::MatrixError), the shared ones in `errors.rs`).

mod errors;
mod login;
mod logout;
mod refresh;
pub mod sso;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::auth::sessions::SessionEnder;
use crate::clock::Clock;
use crate::homeserver::HomeserverConnection;
use crate::jobs::JobWaker;
use crate::rng::RngSource;
use crate::routes;
use crate::storage::Database;

/// The routes of the `compat` resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::COMPAT_LOGIN, get(login::get).post(login::post))
        .route(routes::COMPAT_LOGOUT, post(logout::logout))
        .route(routes::COMPAT_LOGOUT_ALL, post(logout::logout_all))
        .route(routes::COMPAT_REFRESH, post(refresh::post))
        .merge(sso::router())
}

/// This area's routes of the `human` resource: the legacy SSO "continue" page.
pub(crate) fn human_router() -> Router<AppState> {
    Router::new().route(
        routes::COMPLETE_COMPAT_SSO,
        get(sso::complete::get).post(sso::complete::post),
    )
}

/// The state parts of the handlers that start and end compat sessions: the database, clock
/// and randomness they write with, and what [`SessionEnder`] needs on top (the homeserver whose
/// devices it deletes, the job worker it wakes).
#[derive(Clone)]
struct SessionHandles {
    db: Database,
    clock: Arc<dyn Clock>,
    rng: RngSource,
    homeserver: Arc<dyn HomeserverConnection>,
    jobs: JobWaker,
}

impl FromRef<AppState> for SessionHandles {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            homeserver: state.homeserver.clone(),
            jobs: state.jobs.clone(),
        }
    }
}

impl SessionHandles {
    /// Ends sessions as every kind of session ends (docs/architecture.md#conventions).
    fn ender(&self) -> SessionEnder<'_> {
        SessionEnder {
            db: &self.db,
            clock: self.clock.as_ref(),
            rng: &self.rng,
            homeserver: self.homeserver.as_ref(),
            jobs: &self.jobs,
        }
    }
}

#[cfg(test)]
mod tests;
