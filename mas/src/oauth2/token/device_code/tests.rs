//! The device code grant through the real router, on both backends: every answer of RFC 8628
//! §3.5 (pending, too fast, denied, expired), the tokens once approved (the device created in
//! the homeserver first), single use, and what a failed homeserver or an ended browser session
//! does. The person's decision is stored directly; the pages have tests of their own.

use std::time::Duration;

use axum::http::StatusCode;

use crate::app::testing::TestResponse;
use crate::app::testing::oauth::{ApiApp, DEVICE, MATRIX_SCOPE};
use crate::crypto::jwt::verify;
use crate::crypto::{IdTokenClaims, sha256_hex};
use crate::homeserver::MockFailure;
use crate::model::{BrowserSession, Client, DeviceGrant, User};
use crate::oauth2::token::tests::error_of;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, browser_sessions, device_grants};

const API_AND_DEVICE: &str = "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";

/// A device client that asked for codes, and alice signed in on another browser.
struct Waiting {
    client: Client,
    device_code: String,
    grant: DeviceGrant,
    user: User,
    browser: BrowserSession,
}

async fn waiting(app: &ApiApp, scope: &str) -> Waiting {
    waiting_for(app, scope, "alice").await
}

/// The same for `username`.
async fn waiting_for(app: &ApiApp, scope: &str, username: &str) -> Waiting {
    let client = app.device_client().await;
    let body = app.device_authorization(&client, scope, None).await.json();
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    let grant = device_grants::find_device_grant_by_device_code(
        &mut *app.conn().await,
        &sha256_hex(&device_code),
    )
    .await
    .unwrap()
    .unwrap();
    let user = app.user(username).await;
    let browser = app.login(&user).await;
    Waiting {
        client,
        device_code,
        grant,
        user,
        browser,
    }
}

impl Waiting {
    async fn poll(&self, app: &ApiApp) -> TestResponse {
        app.poll_device_code(&self.client, &self.device_code).await
    }

    async fn approve(&self, app: &ApiApp) {
        let approved = device_grants::fulfill_device_grant(
            &mut *app.conn().await,
            &app.clock,
            self.grant.id,
            self.browser.id,
        )
        .await
        .unwrap();
        assert!(approved);
    }
}

/// Asserts a 400 RFC 8628 answer with `error`, uncacheable.
fn assert_error(response: &TestResponse, error: &str) {
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(response), error, "{}", response.text());
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

async fn the_device_waits_then_gets_tokens_and_its_device_once(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    assert_error(&w.poll(&app).await, "authorization_pending");
    // Sooner than the interval: slow_down, again and again, while it keeps hammering.
    app.clock.advance(Duration::from_secs(1));
    assert_error(&w.poll(&app).await, "slow_down");
    app.clock.advance(Duration::from_secs(2));
    assert_error(&w.poll(&app).await, "slow_down");
    // The interval after the last accepted poll: pending again.
    app.clock.advance(Duration::from_secs(2));
    assert_error(&w.poll(&app).await, "authorization_pending");
    assert!(app.homeserver.devices("alice").is_empty());

    w.approve(&app).await;
    let response = w.poll(&app).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], API_AND_DEVICE);
    assert!(body.get("id_token").is_none(), "no openid, no ID token");
    let access = body["access_token"].as_str().unwrap();
    assert!(access.starts_with("mat_"));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("mar_"));
    assert!(app.homeserver.devices("alice").contains(DEVICE));
    let introspection = app.introspect(access).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["username"], "alice");
    assert!(
        introspection["scope"]
            .as_str()
            .unwrap()
            .contains(&format!("device:{DEVICE}")),
        "{introspection}"
    );

    let grant = device_grants::find_device_grant(&mut *app.conn().await, w.grant.id)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.session_id.is_some());
    // Single use: the next poll is refused.
    app.clock.advance(Duration::from_secs(5));
    assert_error(&w.poll(&app).await, "invalid_grant");

    // The refresh token works like any other.
    let refreshed = app
        .refresh(&w.client, body["refresh_token"].as_str().unwrap())
        .await;
    refreshed.assert_status(StatusCode::OK);
}

async fn openid_brings_an_id_token(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, MATRIX_SCOPE).await;
    w.approve(&app).await;
    let response = w.poll(&app).await;
    response.assert_status(StatusCode::OK);
    let id_token = response.json()["id_token"].as_str().unwrap().to_owned();
    let claims: IdTokenClaims = verify(&app.state.keystore.jwks(), &id_token).unwrap();
    assert_eq!(claims.sub, w.user.sub());
    assert_eq!(claims.aud, w.client.id.to_string());
    assert_eq!(claims.nonce, None);
    assert!(claims.at_hash.is_some());
}

async fn a_denied_request_is_access_denied(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    let rejected = device_grants::reject_device_grant(
        &mut *app.conn().await,
        &app.clock,
        w.grant.id,
        w.browser.id,
    )
    .await
    .unwrap();
    assert!(rejected);
    assert_error(&w.poll(&app).await, "access_denied");
    assert!(app.homeserver.devices("alice").is_empty());
}

async fn expired_codes_are_expired_token(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    app.clock.advance(Duration::from_secs(600));
    assert_error(&w.poll(&app).await, "expired_token");

    // Approved in time, but the device came back too late.
    let late = waiting_for(&app, API_AND_DEVICE, "bob").await;
    late.approve(&app).await;
    app.clock.advance(Duration::from_secs(600));
    assert_error(&late.poll(&app).await, "expired_token");
    assert!(app.homeserver.devices("bob").is_empty());
}

async fn codes_of_others_and_malformed_polls_are_refused(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    assert_error(
        &app.poll_device_code(&w.client, "not-a-code").await,
        "invalid_grant",
    );
    let other = app.device_client().await;
    assert_error(
        &app.poll_device_code(&other, &w.device_code).await,
        "invalid_grant",
    );
    let client_id = w.client.id.to_string();
    let response = app
        .token(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &client_id),
        ])
        .await;
    assert_error(&response, "invalid_request");
    // A client that did not register the grant cannot poll.
    let code_only = app.public_client().await;
    let response = app.poll_device_code(&code_only, &w.device_code).await;
    assert_error(&response, "unauthorized_client");
}

async fn the_approving_session_must_still_be_active(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    w.approve(&app).await;
    browser_sessions::finish_browser_session(&mut *app.conn().await, &app.clock, w.browser.id)
        .await
        .unwrap();
    assert_error(&w.poll(&app).await, "invalid_grant");
    assert!(app.homeserver.devices("alice").is_empty());
}

async fn a_homeserver_failure_stores_nothing_and_the_device_may_poll_again(db: Database) {
    let app = ApiApp::new(db).await;
    let w = waiting(&app, API_AND_DEVICE).await;
    w.approve(&app).await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let response = w.poll(&app).await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_of(&response), "temporarily_unavailable");
    let grant = device_grants::find_device_grant(&mut *app.conn().await, w.grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.exchanged_at, None);
    app.homeserver.set_failure(None);
    app.clock.advance(Duration::from_secs(5));
    w.poll(&app).await.assert_status(StatusCode::OK);
}

test_on_both_backends!(
    the_device_waits_then_gets_tokens_and_its_device_once,
    openid_brings_an_id_token,
    a_denied_request_is_access_denied,
    expired_codes_are_expired_token,
    codes_of_others_and_malformed_polls_are_refused,
    the_approving_session_must_still_be_active,
    a_homeserver_failure_stores_nothing_and_the_device_may_poll_again,
);
