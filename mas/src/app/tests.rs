//! Router tests through `oneshot` on the real router.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::testing::{TestApp, appliance_listener};
use super::*;
use crate::storage::testing::{on_sqlite, test_on_both_backends};

async fn state(db: Database) -> AppState {
    TestApp::new(db).await.state
}

/// GETs `path` and returns the status and body text.
async fn get(router: Router, path: &str) -> (StatusCode, String) {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn health_answers_ok_under_the_prefix(db: Database) {
    let app = TestApp::new(db).await;
    let response = app.get("/auth/health").await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.text(), "ok");
}

test_on_both_backends!(health_answers_ok_under_the_prefix);

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    on_sqlite(|db| async move {
        let router = build_router(state(db.clone()).await, &appliance_listener());
        db.close().await;
        let (status, body) = get(router, "/auth/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "database unavailable");
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_and_paths_outside_the_prefix_are_404() {
    on_sqlite(|db| async move {
        let router = build_router(state(db).await, &appliance_listener());
        for path in ["/auth/nope", "/health", "/", "/authhealth"] {
            let (status, _) = get(router.clone(), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn health_is_only_served_when_the_listener_has_the_resource() {
    on_sqlite(|db| async move {
        let mut listener = appliance_listener();
        listener
            .resources
            .retain(|resource| *resource != Resource::Health {});
        let router = build_router(state(db).await, &listener);
        assert_eq!(get(router, "/auth/health").await.0, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn a_listener_without_prefix_serves_at_the_root() {
    on_sqlite(|db| async move {
        let mut listener = appliance_listener();
        listener.prefix = None;
        let router = build_router(state(db).await, &listener);
        assert_eq!(get(router, "/health").await.0, StatusCode::OK);
    })
    .await;
}
