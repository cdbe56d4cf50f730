//! Router-level tests of the compat layer, on both backends.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::app::testing::{MATRIX_SECRET, TestApp, TestResponse, bearer, form_request};
use crate::crypto::{TokenKind, sha256_hex};
use crate::homeserver::{MockCall, MockFailure};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, compat, jobs, users};

const LOGIN: &str = "/auth/_matrix/client/v3/login";

/// `POST path` with a raw body, from `peer` when given.
async fn post_raw(app: &TestApp, path: &str, body: &str, peer: Option<&str>) -> TestResponse {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "Element/1.0")
        .body(Body::from(body.to_owned()))
        .unwrap();
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    app.request(request).await
}

async fn login(app: &TestApp, body: &Value) -> TestResponse {
    post_raw(app, LOGIN, &body.to_string(), None).await
}

fn password_body(user: &str, password: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
    })
}

fn errcode(response: &TestResponse) -> String {
    response.json()["errcode"].as_str().unwrap().to_owned()
}

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
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert!(
        compat::list_active_compat_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(jobs::next_job_due_at(&mut conn).await.unwrap().is_some());
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

/// Introspects `token` as Synapse does, with or without `X-MAS-Supports-Device-Id: 1`.
async fn introspect(app: &TestApp, token: &str, device_header: bool) -> Value {
    let mut request = form_request(Method::POST, "/auth/oauth2/introspect", &[("token", token)]);
    if device_header {
        request
            .headers_mut()
            .insert("x-mas-supports-device-id", "1".parse().unwrap());
    }
    let response = app.request(bearer(request, MATRIX_SECRET)).await;
    response.assert_status(StatusCode::OK);
    response.json()
}

fn scope_set(answer: &Value) -> BTreeSet<String> {
    answer["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn compat_tokens_introspect_as_legacy_with_device_scopes_or_field(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("ALICEDEVICE");
    body["refresh_token"] = json!(true);
    let login = login(&app, &body).await.json();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();

    let answer = introspect(&app, access, false).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "legacy");
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["sub"], alice.id.to_string());
    assert_eq!(answer["token_type"], "access_token");
    assert_eq!(answer["expires_in"], json!(300));
    assert!(answer["exp"].is_i64());
    assert!(answer.get("device_id").is_none());
    assert!(answer.get("jti").is_none());
    assert_eq!(
        scope_set(&answer),
        set(&[
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
            "urn:matrix:client:device:ALICEDEVICE",
            "urn:matrix:org.matrix.msc2967.client:device:ALICEDEVICE",
        ])
    );

    let answer = introspect(&app, access, true).await;
    assert_eq!(answer["device_id"], "ALICEDEVICE");
    assert_eq!(
        scope_set(&answer),
        set(&[
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
        ])
    );
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let stored = compat::find_compat_access_token_by_sha256(&mut conn, &sha256_hex(access))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.first_used_at.is_some());

    let answer = introspect(&app, refresh, true).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert!(answer.get("exp").is_none());

    // A refreshable access token expires after compat_token_ttl.
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(
        introspect(&app, access, true).await,
        json!({ "active": false })
    );
    assert_eq!(introspect(&app, refresh, true).await["active"], true);
}

async fn non_expiring_and_admin_tokens_introspect_until_the_user_is_locked(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    let session = compat::add_compat_session(
        &mut conn,
        &app.clock,
        &mut rng,
        compat::NewCompatSession {
            user_id: alice.id,
            device_id: "ADMINTOOL",
            user_session_id: None,
            is_synapse_admin: true,
            user_agent: None,
            human_name: None,
        },
    )
    .await
    .unwrap();
    let token = TokenKind::CompatAccessToken.generate(&mut rng);
    compat::add_compat_access_token(
        &mut conn,
        &app.clock,
        &mut rng,
        session.id,
        &sha256_hex(&token),
        None,
    )
    .await
    .unwrap();
    app.clock.advance(Duration::from_secs(86_400 * 365));
    let answer = introspect(&app, &token, true).await;
    assert_eq!(answer["active"], true);
    assert!(answer.get("exp").is_none());
    assert!(answer.get("expires_in").is_none());
    assert!(scope_set(&answer).contains("urn:synapse:admin:*"));

    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    assert_eq!(
        introspect(&app, &token, true).await,
        json!({ "active": false })
    );
    users::unlock_user(&mut conn, alice.id).await.unwrap();
    assert_eq!(introspect(&app, &token, true).await["active"], true);
    compat::finish_compat_session(&mut conn, &app.clock, session.id)
        .await
        .unwrap();
    assert_eq!(
        introspect(&app, &token, true).await,
        json!({ "active": false })
    );
}

async fn device_set_includes_active_compat_devices(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("COMPATDEV");
    login(&app, &body).await.assert_status(StatusCode::OK);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let devices = crate::jobs::device_set(&mut conn, alice.id).await.unwrap();
    assert_eq!(devices, set(&["COMPATDEV"]));
    let session = compat::list_active_compat_sessions(&mut conn, alice.id)
        .await
        .unwrap()
        .remove(0);
    compat::finish_compat_session(&mut conn, &app.clock, session.id)
        .await
        .unwrap();
    assert!(
        crate::jobs::device_set(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

test_on_both_backends!(
    compat_tokens_introspect_as_legacy_with_device_scopes_or_field,
    non_expiring_and_admin_tokens_introspect_until_the_user_is_locked,
    device_set_includes_active_compat_devices,
);

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
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert!(
        compat::list_active_compat_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(jobs::next_job_due_at(&mut conn).await.unwrap().is_some());

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
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert!(
        compat::list_active_compat_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
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
