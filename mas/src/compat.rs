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

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::routes;

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

#[cfg(test)]
mod tests;
