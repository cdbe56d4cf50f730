//! `GET/POST …/login`: the flows, password and token logins, their refusals and errcodes, the
//! rate limit, device replacement and a homeserver failure.

use axum::http::StatusCode;
use serde_json::json;

use super::{
    LOGIN, a_job_is_queued, active_compat_sessions, errcode, login, password_body, post_raw,
};
use crate::app::testing::TestApp;
use crate::crypto::{TokenKind, sha256_hex};
use crate::homeserver::{MockCall, MockFailure};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, compat, users};

async fn get_login_lists_password_sso_and_token_flows(db: Database) {
    let app = TestApp::new(db).await;
    for version in ["r0", "v3"] {
        let response = app
            .get(&format!("/auth/_matrix/client/{version}/login"))
            .await;
        response.assert_status(StatusCode::OK);
        assert_eq!(
            response.json(),
            json!({ "flows": [
                { "type": "m.login.password" },
                {
                    "type": "m.login.sso",
                    "identity_providers": [],
                    "oauth_aware_preferred": true,
                    "org.matrix.msc3824.delegated_oidc_compatibility": true,
                },
                { "type": "m.login.token" },
            ]})
        );
    }
}

async fn password_login_gives_a_non_expiring_token_and_creates_the_device(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let response = login(&app, &password_body("alice", "correct horse")).await;
    response.assert_status(StatusCode::OK);
    let body = response.json();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        TokenKind::from_token(token),
        Some(TokenKind::CompatAccessToken)
    );
    assert!(token.starts_with("mct_"));
    assert_eq!(body["user_id"], "@alice:example.com");
    let device_id = body["device_id"].as_str().unwrap();
    assert_eq!(device_id.len(), 10);
    assert!(device_id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("expires_in_ms").is_none());
    assert!(app.homeserver.devices("alice").contains(device_id));

    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let stored = compat::find_compat_access_token_by_sha256(&mut conn, &sha256_hex(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expires_at, None);
    let session = compat::find_compat_session(&mut conn, stored.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user_id, alice.id);
    assert_eq!(session.device_id, device_id);
    assert!(!session.is_synapse_admin);
    assert_eq!(session.user_agent.as_deref(), Some("Element/1.0"));
}

async fn legacy_user_field_and_full_mxid_log_in_with_device_and_refresh_token(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let body = json!({
        "type": "m.login.password",
        "user": "@alice:example.com",
        "identifier": { "type": "m.id.user", "user": "nobody" },
        "password": "correct horse",
        "device_id": "MYPHONE",
        "initial_device_display_name": "Alice's phone",
        "refresh_token": true,
    });
    let response = login(&app, &body).await;
    response.assert_status(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["device_id"], "MYPHONE");
    assert_eq!(body["user_id"], "@alice:example.com");
    assert_eq!(body["expires_in_ms"], 300_000);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(
        TokenKind::from_token(refresh),
        Some(TokenKind::CompatRefreshToken)
    );
    assert!(app.homeserver.calls().contains(&MockCall::UpsertDevice(
        "alice".to_owned(),
        "MYPHONE".to_owned(),
        Some("Alice's phone".to_owned())
    )));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let stored = compat::find_compat_access_token_by_sha256(&mut conn, &sha256_hex(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expires_at, Some(stored.created_at + 300_000));
    assert!(
        compat::find_compat_refresh_token_by_sha256(&mut conn, &sha256_hex(refresh))
            .await
            .unwrap()
            .is_some()
    );
}

async fn wrong_password_and_unknown_user_are_forbidden(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    for body in [
        password_body("alice", "wrong"),
        password_body("bob", "correct horse"),
    ] {
        let response = login(&app, &body).await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert_eq!(errcode(&response), "M_FORBIDDEN");
    }
    assert!(app.homeserver.devices("alice").is_empty());
}

async fn locked_and_deactivated_users_get_their_errcodes(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    let response = login(&app, &password_body("alice", "correct horse")).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(errcode(&response), "M_USER_LOCKED");

    users::unlock_user(&mut conn, alice.id).await.unwrap();
    users::deactivate_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    let response = login(&app, &password_body("alice", "correct horse")).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(errcode(&response), "M_USER_DEACTIVATED");
    assert!(app.homeserver.devices("alice").is_empty());
}

async fn malformed_requests_get_matrix_errcodes(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let cases: [(&str, StatusCode, &str); 8] = [
        ("{not json", StatusCode::BAD_REQUEST, "M_NOT_JSON"),
        (r#"{"type": 5}"#, StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        (
            r#"{"password": "x"}"#,
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
        ),
        (
            r#"{"type": "m.login.password", "password": "x"}"#,
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
        ),
        (
            r#"{"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"}, "password": "x"}"#,
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
        ),
        (
            r#"{"type": "m.login.dummy"}"#,
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
        ),
        (
            r#"{"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": "bot"}}"#,
            StatusCode::BAD_REQUEST,
            "M_APPSERVICE_LOGIN_UNSUPPORTED",
        ),
        (
            r#"{"type": "m.login.password", "user": "alice", "password": "correct horse", "device_id": ""}"#,
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
        ),
    ];
    for (body, status, expected) in cases {
        let response = post_raw(&app, LOGIN, body, None).await;
        response.assert_status(status);
        assert_eq!(errcode(&response), expected, "{body}");
    }
}

async fn unknown_login_token_is_forbidden(db: Database) {
    let app = TestApp::new(db).await;
    let response = login(
        &app,
        &json!({ "type": "m.login.token", "token": "abcdefghijklmnopqrstuvwxyz012345" }),
    )
    .await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(errcode(&response), "M_FORBIDDEN");
}

async fn password_attempts_are_rate_limited_per_address(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let wrong = password_body("alice", "wrong").to_string();
    for _ in 0..3 {
        let response = post_raw(&app, LOGIN, &wrong, Some("203.0.113.5:40000")).await;
        assert_eq!(errcode(&response), "M_FORBIDDEN");
    }
    let right = password_body("alice", "correct horse").to_string();
    let response = post_raw(&app, LOGIN, &right, Some("203.0.113.5:40000")).await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(errcode(&response), "M_LIMIT_EXCEEDED");
    let retry = response.json()["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 20_000, "{retry}");
    // The header says the same, in whole seconds rounded up (RFC 6585 §4).
    let header: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(header, retry.div_ceil(1000).max(1));
    // Another address is not affected.
    let response = post_raw(&app, LOGIN, &right, Some("203.0.113.6:40000")).await;
    response.assert_status(StatusCode::OK);
}

async fn unknown_users_and_users_without_a_password_cost_one_verification(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    app.user_without_password("bob").await;
    // The router's state shares this manager (and its counter).
    let manager = app.state.passwords.clone().unwrap();
    assert_eq!(manager.verifications(), 0);
    let mut expected = 0;
    for username in ["nobody", "bob", "alice"] {
        let response = login(&app, &password_body(username, "guess")).await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert_eq!(errcode(&response), "M_FORBIDDEN");
        expected += 1;
        assert_eq!(manager.verifications(), expected, "{username}");
    }
}

async fn logging_in_with_a_device_in_use_ends_the_other_session(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("SHARED");
    let first = login(&app, &body).await.json();
    let second = login(&app, &body).await.json();
    assert_ne!(first["access_token"], second["access_token"]);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let active = compat::list_active_compat_sessions(&mut conn, alice.id)
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    let old = compat::find_compat_access_token_by_sha256(
        &mut conn,
        &sha256_hex(first["access_token"].as_str().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(old.revoked_at.is_some());
    assert_ne!(old.session_id, active[0].id);
    assert!(app.homeserver.devices("alice").contains("SHARED"));
}

async fn homeserver_failure_ends_the_session_and_queues_a_device_sync(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let response = login(&app, &password_body("alice", "correct horse")).await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    app.homeserver.set_failure(None);
    assert!(active_compat_sessions(&app, &alice).await.is_empty());
    assert!(a_job_is_queued(&app).await);
}

test_on_both_backends!(
    get_login_lists_password_sso_and_token_flows,
    password_login_gives_a_non_expiring_token_and_creates_the_device,
    legacy_user_field_and_full_mxid_log_in_with_device_and_refresh_token,
    wrong_password_and_unknown_user_are_forbidden,
    locked_and_deactivated_users_get_their_errcodes,
    malformed_requests_get_matrix_errcodes,
    unknown_login_token_is_forbidden,
    password_attempts_are_rate_limited_per_address,
    unknown_users_and_users_without_a_password_cost_one_verification,
    logging_in_with_a_device_in_use_ends_the_other_session,
    homeserver_failure_ends_the_session_and_queues_a_device_sync,
);
