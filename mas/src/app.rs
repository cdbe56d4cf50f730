//! The HTTP application: [`AppState`] (every field a cheap handle) and [`build_router`],
//! which assembles the route groups a listener's resources ask for under its prefix. Areas
//! own their routes (`health::router()`, later `oauth2::router()`…); this module only merges
//! them and adds the layers shared by all.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::clock::Clock;
use crate::config::{ListenerConfig, Resource};
use crate::routes::UrlBuilder;
use crate::storage::Database;

/// What handlers share. Handlers extract only the parts they use (`State<Database>`).
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// The database pool.
    pub db: Database,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Public URLs.
    pub urls: UrlBuilder,
}

/// The router for one listener: the route groups of its resources, nested under its prefix;
/// anything else is 404.
pub fn build_router(state: AppState, listener: &ListenerConfig) -> Router {
    let mut routes = Router::new();
    for resource in &listener.resources {
        if let Some(group) = resource_router(resource) {
            routes = routes.merge(group);
        }
    }
    let routes = match listener.path_prefix() {
        Some(prefix) => Router::new().nest(prefix, routes),
        None => routes,
    };
    routes
        .fallback(not_found)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The routes of one resource, `None` for those not served yet.
fn resource_router(resource: &Resource) -> Option<Router<AppState>> {
    match resource {
        Resource::Health {} => Some(crate::health::router()),
        Resource::Discovery {}
        | Resource::Human {}
        | Resource::OAuth {}
        | Resource::Compat {}
        | Resource::Assets { .. }
        | Resource::Prometheus {}
        | Resource::AdminApi {} => None,
    }
}

/// Whether [`build_router`] serves anything for `resource` yet.
pub fn is_served(resource: &Resource) -> bool {
    resource_router(resource).is_some()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

/// One debug line per request; errors are logged where they are understood.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        "request"
    );
    response
}

#[cfg(test)]
mod tests;
