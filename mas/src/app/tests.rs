//! Router tests through `oneshot` on the real router.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::clock::MockClock;
use crate::config::BindConfig;
use crate::storage::testing::{on_sqlite, test_on_both_backends};

/// The appliance's listener: prefix `/auth`, health among its resources.
fn appliance_listener() -> ListenerConfig {
    ListenerConfig {
        name: Some("web".to_owned()),
        resources: vec![Resource::Discovery {}, Resource::Health {}],
        prefix: Some("/auth".to_owned()),
        binds: vec![BindConfig::address("127.0.0.1:8080")],
    }
}

fn state(db: Database) -> AppState {
    AppState {
        db,
        clock: Arc::new(MockClock::default()),
        urls: UrlBuilder::new("http://localhost:8000/auth/".parse().unwrap()),
    }
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
    let router = build_router(state(db), &appliance_listener());
    assert_eq!(
        get(router, "/auth/health").await,
        (StatusCode::OK, "ok".to_owned())
    );
}

test_on_both_backends!(health_answers_ok_under_the_prefix);

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    on_sqlite(|db| async move {
        db.close().await;
        let router = build_router(state(db), &appliance_listener());
        let (status, body) = get(router, "/auth/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "database unavailable");
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_and_paths_outside_the_prefix_are_404() {
    on_sqlite(|db| async move {
        let router = build_router(state(db), &appliance_listener());
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
        let router = build_router(state(db), &listener);
        assert_eq!(get(router, "/auth/health").await.0, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn a_listener_without_prefix_serves_at_the_root() {
    on_sqlite(|db| async move {
        let mut listener = appliance_listener();
        listener.prefix = None;
        let router = build_router(state(db), &listener);
        assert_eq!(get(router, "/health").await.0, StatusCode::OK);
    })
    .await;
}
