//! `POST …/logout`, `…/logout/all` and `…/refresh`: ending compat sessions with their
//! devices, and rotating a refreshable pair.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use super::{a_job_is_queued, active_compat_sessions, errcode, introspect, login, password_body};
use crate::app::testing::{TestApp, TestResponse, bearer};
use crate::crypto::TokenKind;
use crate::homeserver::MockCall;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

/// `POST path` with a JSON body and a bearer token (when given).
async fn post_bearer(app: &TestApp, path: &str, token: Option<&str>, body: &str) -> TestResponse {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    if let Some(token) = token {
        request = bearer(request, token);
    }
    app.request(request).await
}

const LOGOUT: &str = "/auth/_matrix/client/v3/logout";
const LOGOUT_ALL: &str = "/auth/_matrix/client/v3/logout/all";
const REFRESH: &str = "/auth/_matrix/client/v3/refresh";

async fn logout_ends_the_session_and_deletes_the_device_at_once(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("PHONE");
    let token = login(&app, &body).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = post_bearer(&app, LOGOUT, Some(&token), "{}").await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json(), json!({}));
    assert!(app.homeserver.calls().contains(&MockCall::DeleteDevice(
        "alice".to_owned(),
        "PHONE".to_owned()
    )));
    assert!(!app.homeserver.devices("alice").contains("PHONE"));
    assert_eq!(
        introspect(&app, &token, true).await,
        json!({ "active": false })
    );
    assert!(active_compat_sessions(&app, &alice).await.is_empty());
    assert!(a_job_is_queued(&app).await);

    // The same token again is unknown; no token is missing.
    let response = post_bearer(&app, LOGOUT, Some(&token), "{}").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(errcode(&response), "M_UNKNOWN_TOKEN");
    let response = post_bearer(&app, LOGOUT, None, "{}").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(errcode(&response), "M_MISSING_TOKEN");
    let response = post_bearer(&app, LOGOUT, Some("not-a-token"), "{}").await;
    assert_eq!(errcode(&response), "M_UNKNOWN_TOKEN");
}

async fn logout_all_needs_the_compat_only_flag_and_ends_every_compat_session(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let first = login(&app, &password_body("alice", "correct horse"))
        .await
        .json();
    login(&app, &password_body("alice", "correct horse"))
        .await
        .assert_status(StatusCode::OK);
    let token = first["access_token"].as_str().unwrap();
    for body in ["", "{}", r#"{"io.element.only_compat_is_fine": false}"#] {
        let response = post_bearer(&app, LOGOUT_ALL, Some(token), body).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(errcode(&response), "M_UNRECOGNIZED", "{body}");
    }
    let response = post_bearer(
        &app,
        LOGOUT_ALL,
        Some(token),
        r#"{"io.element.only_compat_is_fine": true}"#,
    )
    .await;
    response.assert_status(StatusCode::OK);
    assert!(active_compat_sessions(&app, &alice).await.is_empty());
    assert!(app.homeserver.devices("alice").is_empty());
    let response = post_bearer(&app, LOGOUT_ALL, None, "{}").await;
    assert_eq!(errcode(&response), "M_MISSING_TOKEN");
}

async fn refresh_rotates_the_pair_and_a_consumed_token_is_unknown(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["refresh_token"] = json!(true);
    let first = login(&app, &body).await.json();
    let old_access = first["access_token"].as_str().unwrap();
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let refresh_body = json!({ "refresh_token": old_refresh }).to_string();

    let response = post_bearer(&app, REFRESH, None, &refresh_body).await;
    response.assert_status(StatusCode::OK);
    let second = response.json();
    let new_access = second["access_token"].as_str().unwrap();
    let new_refresh = second["refresh_token"].as_str().unwrap();
    assert_eq!(second["expires_in_ms"], 300_000);
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(
        TokenKind::from_token(new_access),
        Some(TokenKind::CompatAccessToken)
    );
    assert_eq!(introspect(&app, old_access, true).await["active"], false);
    let answer = introspect(&app, new_access, true).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["device_id"], first["device_id"]);

    let response = post_bearer(&app, REFRESH, None, &refresh_body).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(errcode(&response), "M_UNKNOWN_TOKEN");
    for bad in [
        r#"{"refresh_token": "mcr_unknown"}"#.to_owned(),
        json!({ "refresh_token": new_access }).to_string(),
    ] {
        let response = post_bearer(&app, REFRESH, None, &bad).await;
        assert_eq!(errcode(&response), "M_UNKNOWN_TOKEN", "{bad}");
    }
    let response = post_bearer(&app, REFRESH, None, "{nope").await;
    assert_eq!(errcode(&response), "M_NOT_JSON");
    let response = post_bearer(&app, REFRESH, None, "{}").await;
    assert_eq!(errcode(&response), "M_BAD_JSON");

    // After logout the new refresh token is dead too.
    post_bearer(&app, LOGOUT, Some(new_access), "{}")
        .await
        .assert_status(StatusCode::OK);
    let response = post_bearer(
        &app,
        REFRESH,
        None,
        &json!({ "refresh_token": new_refresh }).to_string(),
    )
    .await;
    assert_eq!(errcode(&response), "M_UNKNOWN_TOKEN");
}

test_on_both_backends!(
    logout_ends_the_session_and_deletes_the_device_at_once,
    logout_all_needs_the_compat_only_flag_and_ends_every_compat_session,
    refresh_rotates_the_pair_and_a_consumed_token_is_unknown,
);
