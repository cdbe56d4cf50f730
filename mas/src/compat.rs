//! The Matrix compat layer (mas-protocol §3): the legacy client-server login API that Synapse
//! stops serving when MAS is on. The router rewrites `/_matrix/client/{v}/(login|logout|refresh)`
//! to `/auth/…`, so these routes live under the listener prefix.

pub mod sso;

use axum::Router;

use crate::app::AppState;

/// The routes of the `compat` resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new().merge(sso::router())
}
