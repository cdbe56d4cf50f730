//! The OAuth 2.0 / OpenID Connect provider (mas-protocol §2, §7, §10–§12): discovery, the
//! JWKS, dynamic client registration, the token endpoint and its grants, introspection for
//! Synapse, revocation and userinfo. The browser side (`/authorize`, consent, the scope
//! policy) lives here too but belongs to the human route group.
//!
//! This module assembles the two route groups ([`discovery_router`], [`api_router`]: a
//! permissive CORS layer and a 64 KiB body limit) and this area's part of the `human` group
//! ([`human_router`]). Sessions end through [`crate::auth::sessions`].

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
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::routes;

/// The largest request body the OAuth API reads (forms and registration JSON are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `discovery` resource: provider metadata and WebFinger.
pub(crate) fn discovery_router() -> Router<AppState> {
    Router::new()
        .route(routes::OIDC_DISCOVERY, get(discovery::get))
        .route(routes::WEBFINGER, get(discovery::webfinger))
        .layer(middleware::from_fn(cors))
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
        .layer(middleware::from_fn(cors))
}

/// This area's routes of the `human` resource: `/authorize` and the consent page.
pub(crate) fn human_router() -> Router<AppState> {
    Router::new()
        .route(routes::AUTHORIZE, get(authorize::get))
        .route(routes::CONSENT, get(consent::get).post(consent::post))
}

/// A permissive CORS layer (upstream serves the OAuth API with one): any origin, no
/// credentials (the API uses no cookies). Preflight requests are answered here.
pub(crate) async fn cors(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let requested_headers = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            requested_headers
                .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type")),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return response;
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
