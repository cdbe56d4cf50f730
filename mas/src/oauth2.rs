//! The OAuth 2.0 / OpenID Connect provider (RFC 6749, OpenID Connect Core; docs/protocol.md):
//! discovery, the JWKS, dynamic client registration, the token endpoint and its grants,
//! introspection for Synapse, revocation and userinfo. The browser side (`/authorize`, consent, the
//! scope policy, the device grant's pages) lives here too but belongs to the human route group.
//!
//! This module assembles the two route groups ([`discovery_router`], [`api_router`]: a
//! permissive CORS layer and a 64 KiB body limit) and this area's part of the `human` group
//! ([`human_router`]). Sessions end through [`crate::auth::sessions`].

pub mod authorize;
pub mod consent;
pub mod device;
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

use crate::app::AppState;
use crate::routes;

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
        .route(routes::OAUTH2_DEVICE, post(device::authorization::post))
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

/// This area's routes of the `human` resource: `/authorize`, the consent page and the device
/// authorization grant's pages.
pub(crate) fn human_router() -> Router<AppState> {
    Router::new()
        .route(routes::AUTHORIZE, get(authorize::get))
        .route(routes::CONSENT, get(consent::get).post(consent::post))
        .route(
            routes::LINK,
            get(device::link::get).post(device::link::post),
        )
        .route(
            routes::DEVICE_CONSENT,
            get(device::consent::get).post(device::consent::post),
        )
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
