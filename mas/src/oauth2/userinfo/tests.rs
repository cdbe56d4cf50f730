//! `GET`/`POST /oauth2/userinfo` through the real router, on both backends.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::app::testing::oauth::{ApiApp, MATRIX_SCOPE, path, s256};
use crate::app::testing::{TestResponse, bearer};
use crate::crypto::jwt::verify;
use crate::routes;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

async fn get(app: &ApiApp, token: Option<&str>) -> TestResponse {
    let request = Request::get(path(routes::OAUTH2_USERINFO))
        .body(Body::empty())
        .unwrap();
    let request = match token {
        Some(token) => bearer(request, token),
        None => request,
    };
    app.request(request).await
}

async fn userinfo_answers_sub_and_username_by_get_and_post(db: Database) {
    let app = ApiApp::new(db).await;
    let (_, user, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let expected = json!({"sub": user.sub(), "username": "alice"});
    let response = get(&app, Some(&tokens.access_token)).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json(), expected);
    let request = Request::post(path(routes::OAUTH2_USERINFO))
        .body(Body::empty())
        .unwrap();
    let response = app.request(bearer(request, &tokens.access_token)).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json(), expected);
}

async fn userinfo_needs_a_valid_token_with_openid(db: Database) {
    let app = ApiApp::new(db).await;
    let response = get(&app, None).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));

    for token in ["garbage", "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4"] {
        let response = get(&app, Some(token)).await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(response.json()["error"], "invalid_token");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }

    let (_, _, no_openid) = app.logged_in("bob", "urn:matrix:client:api:*").await;
    let response = get(&app, Some(&no_openid.access_token)).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(response.json()["error"], "insufficient_scope");

    let (_, _, tokens) = app.logged_in("carol", "openid").await;
    app.clock.advance(Duration::from_secs(300));
    get(&app, Some(&tokens.access_token))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn clients_that_asked_for_it_get_a_signed_jwt(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let mut metadata = app.public_client().await.metadata;
    metadata.userinfo_signed_response_alg = Some("ES256".to_owned());
    let client = app.add_client(metadata, None).await;
    let browser = app.login(&user).await;
    let code = app
        .fulfilled_grant(&client, &browser, "openid", s256())
        .await;
    let tokens = app.exchange(&client, &code).await.json();
    let response = get(&app, tokens["access_token"].as_str()).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("application/jwt"));
    let claims: serde_json::Value = verify(&app.state.keystore.jwks(), &response.text()).unwrap();
    assert_eq!(
        claims,
        json!({
            "iss": "http://localhost:8000/auth/",
            "aud": client.id.to_string(),
            "sub": user.sub(),
            "username": "alice",
        })
    );
}

test_on_both_backends!(
    userinfo_answers_sub_and_username_by_get_and_post,
    userinfo_needs_a_valid_token_with_openid,
    clients_that_asked_for_it_get_a_signed_jwt,
);
