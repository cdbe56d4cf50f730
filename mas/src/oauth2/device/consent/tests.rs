//! Router tests of `/device/{grant_id}` on both backends: the login detour and back, what the
//! page shows, Allow and Deny recorded with the browser session, and each refusal (used,
//! expired, unknown, no CSRF, unknown action, the scope policy, a locked user).

use std::time::Duration;

use axum::http::StatusCode;

use crate::app::testing::browser::{Browser, csrf_of, location};
use crate::app::testing::{TestApp, TestResponse};
use crate::homeserver::MockUser;
use crate::model::{DEVICE_CODE_LIFETIME_MS, DeviceGrant, DeviceGrantStage};
use crate::oauth2::device::link::tests::{
    DEVICE_SCOPE, USER_CODE, device_grant, enter_code, stored,
};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, browser_sessions, users};

/// The approval page of `grant`.
fn page_of(grant: &DeviceGrant) -> String {
    format!("/auth/device/{}", grant.id)
}

/// A signed-in browser of a new user `alice` (display name "Alice Liddell").
async fn alice(app: &TestApp) -> Browser {
    app.user_with_password("alice", "correct horse").await;
    app.homeserver.insert_user(
        "alice",
        MockUser {
            display_name: Some("Alice Liddell".to_owned()),
            ..MockUser::default()
        },
    );
    let mut browser = app.browser();
    browser.login("alice", "correct horse").await;
    browser
}

/// Loads the approval page and sends `action` with its CSRF token.
async fn decide(browser: &mut Browser, grant: &DeviceGrant, action: &str) -> TestResponse {
    let page = browser.get(&page_of(grant)).await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    browser
        .post(&page_of(grant), &[("csrf", &csrf), ("action", action)])
        .await
}

/// The user of the browser session that decided `grant`.
async fn decided_by(app: &TestApp, grant: &DeviceGrant) -> String {
    let session_id = stored(app, grant).await.user_session_id.expect("a session");
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let session = browser_sessions::find_active_browser_session(&mut conn, session_id)
        .await
        .unwrap()
        .expect("an active session");
    session.user.username
}

async fn without_a_session_the_page_sends_to_login_and_back(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    let to_device = location(&enter_code(&mut browser, "WXYZ-KLMN").await);
    assert_eq!(to_device, page_of(&grant));
    let to_login = location(&browser.get(&to_device).await);
    assert_eq!(
        to_login,
        format!(
            "/auth/login?kind=continue_device_code_grant&id={}",
            grant.id
        )
    );
    let response = browser.login_at(&to_login, "alice", "correct horse").await;
    assert_eq!(location(&response), page_of(&grant));
    let page = browser.get(&page_of(&grant)).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("<h1>Sign in on a new device?</h1>"));
    // A POST without a session goes the same way (and decides nothing).
    let mut stranger = app.browser();
    let csrf = csrf_of(&stranger.get("/auth/link").await.text());
    let response = stranger
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "allow")])
        .await;
    assert!(location(&response).starts_with("/auth/login?kind=continue_device_code_grant"));
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
}

async fn the_page_names_the_client_device_code_origin_and_user(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    app.clock.advance(Duration::from_secs(3 * 60 + 10));
    let page = browser.get(&page_of(&grant)).await;
    page.assert_status(StatusCode::OK);
    let html = page.text().replace("&#x2f;", "/");
    for expected in [
        "<h1>Sign in on a new device?</h1>",
        r#"<span class="client-name">Test Client</span> on a new device"#,
        "Device ID of the new session: <code>ABCDEFGHIJ</code>",
        r#"<p class="user-code"><code>WXYZ-KLMN</code></p>"#,
        "Check that your new device shows this code",
        "IP address: <code>192.0.2.7</code>",
        "Device: Element X/25.01 (Android 15)",
        "Requested 3 minutes ago",
        "<strong>Alice Liddell</strong> (@alice:example.com)",
        "read and send messages",
        "whoever holds the device gets access to your account.",
        ">Allow</button>",
        ">Deny</button>",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self'"), "{csp}");
}

async fn allow_fulfils_the_grant_with_the_browser_session(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let response = decide(&mut browser, &grant, "allow").await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(html.contains("<h1>Device signed in</h1>"), "{html}");
    assert!(html.contains("You can return to your device; it will finish signing in by itself."));
    let after = stored(&app, &grant).await;
    assert_eq!(after.stage(), DeviceGrantStage::Fulfilled);
    assert_eq!(decided_by(&app, &grant).await, "alice");
    // Single use: the page, the form and the code are refused from now on.
    let again = browser.get(&page_of(&grant)).await;
    again.assert_status(StatusCode::BAD_REQUEST);
    assert!(again.text().contains("This code was already used."));
    let csrf = csrf_of(&browser.get("/auth/link").await.text());
    let twice = browser
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "deny")])
        .await;
    twice.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Fulfilled
    );
    let code = enter_code(&mut browser, "WXYZ-KLMN").await;
    code.assert_status(StatusCode::BAD_REQUEST);
    assert!(code.text().contains("This code was already used."));
}

async fn deny_rejects_the_grant(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let response = decide(&mut browser, &grant, "deny").await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(html.contains("<h1>Sign-in denied</h1>"), "{html}");
    assert!(html.contains("The device was not signed in."));
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Rejected
    );
    assert_eq!(decided_by(&app, &grant).await, "alice");
    let code = enter_code(&mut browser, "WXYZ-KLMN").await;
    code.assert_status(StatusCode::BAD_REQUEST);
    assert!(code.text().contains("This code was already used."));
}

async fn allow_on_an_expired_grant_is_refused(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let page = browser.get(&page_of(&grant)).await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    app.clock.advance(Duration::from_millis(
        DEVICE_CODE_LIFETIME_MS.unsigned_abs(),
    ));
    let response = browser
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "allow")])
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .contains("This code has expired. Start again on your device.")
    );
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
    let again = browser.get(&page_of(&grant)).await;
    again.assert_status(StatusCode::BAD_REQUEST);
    assert!(again.text().contains("This code has expired."));
}

async fn forms_without_csrf_or_a_known_action_are_refused(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let csrf = csrf_of(&browser.get(&page_of(&grant)).await.text());
    let forged = browser.post(&page_of(&grant), &[("action", "allow")]).await;
    forged.assert_status(StatusCode::FORBIDDEN);
    assert!(forged.text().contains("This form has expired"));
    for action in ["approve", ""] {
        let response = browser
            .post(&page_of(&grant), &[("csrf", &csrf), ("action", action)])
            .await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(response.text().contains("Choose Allow or Deny"), "{action}");
    }
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
}

async fn unknown_grants_are_not_found(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    for path in [
        format!("/auth/device/{}", ulid::Ulid::from_parts(1, 2)),
        "/auth/device/not-a-ulid".to_owned(),
    ] {
        let response = browser.get(&path).await;
        response.assert_status(StatusCode::NOT_FOUND);
        assert!(response.text().contains("Request not found"), "{path}");
    }
}

async fn the_scope_policy_applies_on_both_methods(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let scope = format!("{DEVICE_SCOPE} urn:synapse:admin:*");
    let grant = device_grant(&app, &client, &scope, USER_CODE).await;
    let page = browser.get(&page_of(&grant)).await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert!(page.text().contains("This request is not allowed"));
    let csrf = csrf_of(&browser.get("/auth/link").await.text());
    let allow = browser
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "allow")])
        .await;
    allow.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
    // Denying needs no permission.
    let deny = browser
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "deny")])
        .await;
    deny.assert_status(StatusCode::OK);
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Rejected
    );
}

async fn a_locked_user_cannot_approve(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let csrf = csrf_of(&browser.get(&page_of(&grant)).await.text());
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let alice = users::find_user_by_username(&mut conn, "alice")
        .await
        .unwrap()
        .unwrap();
    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    drop(conn);
    let response = browser
        .post(&page_of(&grant), &[("csrf", &csrf), ("action", "allow")])
        .await;
    assert!(location(&response).starts_with("/auth/login?kind=continue_device_code_grant"));
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
}

test_on_both_backends!(
    without_a_session_the_page_sends_to_login_and_back,
    the_page_names_the_client_device_code_origin_and_user,
    allow_fulfils_the_grant_with_the_browser_session,
    deny_rejects_the_grant,
    allow_on_an_expired_grant_is_refused,
    forms_without_csrf_or_a_known_action_are_refused,
    unknown_grants_are_not_found,
    the_scope_policy_applies_on_both_methods,
    a_locked_user_cannot_approve,
);

/// The whole grant through the router: the device asks, the person follows
/// `verification_uri_complete`, signs in, sees the request as the device sent it and allows; the
/// device's next poll gets tokens.
async fn a_device_is_signed_in_from_the_link_to_the_tokens(db: Database) {
    use crate::app::testing::oauth::ApiApp;
    let app = ApiApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let client = app.device_client().await;
    let asked = app
        .device_authorization(&client, DEVICE_SCOPE, Some("198.51.100.23:5000"))
        .await;
    asked.assert_status(StatusCode::OK);
    let body = asked.json();
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    let user_code = body["user_code"].as_str().unwrap().to_owned();
    let link = body["verification_uri_complete"].as_str().unwrap();
    let link = link.strip_prefix("http://localhost:8000").unwrap();
    let pending = app.poll_device_code(&client, &device_code).await;
    pending.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(pending.json()["error"], "authorization_pending");

    let mut browser = app.browser();
    let to_device = location(&browser.get(link).await);
    let to_login = location(&browser.get(&to_device).await);
    let back = browser.login_at(&to_login, "alice", "correct horse").await;
    assert_eq!(location(&back), to_device);
    let page = browser.get(&to_device).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains(&format!("<code>{user_code}</code>")),
        "{html}"
    );
    assert!(
        html.contains("IP address: <code>198.51.100.23</code>"),
        "{html}"
    );
    assert!(html.contains("Device: Element X&#x2f;26.12"), "{html}");
    assert!(html.contains("Requested just now"));
    let csrf = csrf_of(&html);
    browser
        .post(&to_device, &[("csrf", &csrf), ("action", "allow")])
        .await
        .assert_status(StatusCode::OK);

    app.clock.advance(Duration::from_secs(5));
    let tokens = app.poll_device_code(&client, &device_code).await;
    tokens.assert_status(StatusCode::OK);
    assert!(tokens.json()["access_token"].as_str().is_some());
}

test_on_both_backends!(a_device_is_signed_in_from_the_link_to_the_tokens);
