//! Router tests of `/link` on both backends: the page, good codes typed any way and from a
//! `verification_uri_complete` link, each refusal (unknown, expired, used, empty, no CSRF) and
//! the per-address rate limit. Also the fixtures of the device grant page tests.

use std::time::Duration;

use axum::http::StatusCode;

use crate::app::testing::browser::{Browser, csrf_of, location};
use crate::app::testing::{TestApp, TestResponse};
use crate::model::{
    Client, DEVICE_CODE_LIFETIME_MS, DeviceGrant, DeviceGrantStage, NewDeviceGrant,
};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, device_grants};

/// The user code of the fixture grants, as stored.
pub(crate) const USER_CODE: &str = "WXYZKLMN";
/// The scope of an Element-X-style device login.
pub(crate) const DEVICE_SCOPE: &str =
    "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";

/// A pending device grant of `client` for `scope` with `user_code`, asked from 192.0.2.7.
pub(crate) async fn device_grant(
    app: &TestApp,
    client: &Client,
    scope: &str,
    user_code: &str,
) -> DeviceGrant {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let request = NewDeviceGrant {
        client_id: client.id,
        scope: scope.parse().unwrap(),
        device_code_sha256: crate::crypto::sha256_hex(user_code),
        user_code: user_code.to_owned(),
        ip_address: Some("192.0.2.7".to_owned()),
        user_agent: Some("Element X/25.01 (Android 15)".to_owned()),
    };
    device_grants::add_device_grant(&mut conn, &app.clock, &mut app.state.rng.fork(), request)
        .await
        .unwrap()
}

/// The grant as stored now.
pub(crate) async fn stored(app: &TestApp, grant: &DeviceGrant) -> DeviceGrant {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    device_grants::find_device_grant(&mut conn, grant.id)
        .await
        .unwrap()
        .unwrap()
}

/// Types `code` into the code page and sends it.
pub(crate) async fn enter_code(browser: &mut Browser, code: &str) -> TestResponse {
    let page = browser.get("/auth/link").await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    browser
        .post("/auth/link", &[("csrf", &csrf), ("code", code)])
        .await
}

/// Asserts the code page came back with status 400, `message` beside the field, and the code
/// as typed in the field.
#[track_caller]
fn assert_refused(response: &TestResponse, message: &str, typed: &str) {
    response.assert_status(StatusCode::BAD_REQUEST);
    let html = response.text();
    assert!(html.contains("<h1>Link a device</h1>"), "{html}");
    assert!(html.contains(message), "{message}: {html}");
    assert!(html.contains(r#"<p class="field-error" id="code-error">"#));
    assert!(html.contains(&format!(r#"value="{typed}""#)), "{html}");
    assert!(html.contains(r#"aria-invalid="true" aria-describedby="code-hint code-error""#));
}

const UNKNOWN: &str = "No sign-in request has this code. Check the code shown on your device.";
const EXPIRED: &str = "This code has expired. Start again on your device.";
const USED: &str = "This code was already used.";

async fn the_code_page_asks_for_the_code(db: Database) {
    let app = TestApp::new(db).await;
    let page = app.browser().get("/auth/link").await;
    page.assert_status(StatusCode::OK);
    let html = page.text().replace("&#x2f;", "/");
    assert!(html.contains("<h1>Link a device</h1>"));
    assert!(html.contains(r#"<label for="code">Code</label>"#));
    assert!(html.contains(r#"autocomplete="off" autocapitalize="characters""#));
    assert!(!html.contains("aria-invalid"));
    assert!(html.contains(r#"<form method="post" action="/auth/link">"#));
}

async fn a_good_code_typed_any_way_leads_to_the_approval_page(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    for typed in ["WXYZ-KLMN", "wxyzklmn", " wxyz klmn ", "Wxyz-kLmN"] {
        let response = enter_code(&mut browser, typed).await;
        assert_eq!(
            location(&response),
            format!("/auth/device/{}", grant.id),
            "{typed}"
        );
    }
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
}

async fn the_code_of_a_complete_link_is_looked_up_at_once(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    let response = browser.get("/auth/link?code=WXYZ-KLMN").await;
    assert_eq!(location(&response), format!("/auth/device/{}", grant.id));
    let response = browser.get("/auth/link?code=NOPE-NOPE").await;
    assert_refused(&response, UNKNOWN, "NOPE-NOPE");
    let blank = browser.get("/auth/link?code=").await;
    blank.assert_status(StatusCode::OK);
    assert!(!blank.text().contains("aria-invalid"));
    let repeated = browser.get("/auth/link?code=A&code=B").await;
    repeated.assert_status(StatusCode::BAD_REQUEST);
    assert!(repeated.text().contains("Invalid link"));
}

async fn an_unknown_code_is_refused_on_the_page_again(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    let response = enter_code(&mut browser, "WXYZ-KLMX").await;
    assert_refused(&response, UNKNOWN, "WXYZ-KLMX");
    // The page can be sent again at once with its new token.
    let csrf = csrf_of(&response.text());
    let again = browser
        .post("/auth/link", &[("csrf", &csrf), ("code", "WXYZ-KLMN")])
        .await;
    assert!(location(&again).starts_with("/auth/device/"));
    let empty = enter_code(&mut browser, " - ").await;
    assert_refused(&empty, "Enter the code shown on your device.", " - ");
}

async fn an_expired_code_is_refused(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    app.clock.advance(Duration::from_millis(
        DEVICE_CODE_LIFETIME_MS.unsigned_abs(),
    ));
    let response = enter_code(&mut browser, "WXYZ-KLMN").await;
    assert_refused(&response, EXPIRED, "WXYZ-KLMN");
    let response = browser.get("/auth/link?code=WXYZKLMN").await;
    assert_refused(&response, EXPIRED, "WXYZKLMN");
    assert_eq!(
        stored(&app, &grant).await.stage(),
        DeviceGrantStage::Pending
    );
}

async fn a_decided_code_is_refused_as_used(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let user = app.user_with_password("alice", "correct horse").await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let browser_session = crate::storage::browser_sessions::start_browser_session(
        &mut conn,
        &app.clock,
        &mut app.state.rng.fork(),
        &user,
        None,
        None,
    )
    .await
    .unwrap();
    let approved = device_grant(&app, &client, DEVICE_SCOPE, "AAAABBBB").await;
    let denied = device_grant(&app, &client, DEVICE_SCOPE, "CCCCDDDD").await;
    assert!(
        device_grants::fulfill_device_grant(&mut conn, &app.clock, approved.id, browser_session.id)
            .await
            .unwrap()
    );
    assert!(
        device_grants::reject_device_grant(&mut conn, &app.clock, denied.id, browser_session.id)
            .await
            .unwrap()
    );
    drop(conn);
    let mut browser = app.browser();
    for code in ["AAAA-BBBB", "CCCC-DDDD"] {
        assert_refused(&enter_code(&mut browser, code).await, USED, code);
    }
    // Used and expired: "used" is what the person needs to know.
    app.clock.advance(Duration::from_millis(
        DEVICE_CODE_LIFETIME_MS.unsigned_abs(),
    ));
    assert_refused(
        &enter_code(&mut browser, "AAAABBBB").await,
        USED,
        "AAAABBBB",
    );
}

async fn a_code_without_the_csrf_token_is_refused(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = app.browser();
    browser.get("/auth/link").await;
    let response = browser.post("/auth/link", &[("code", "WXYZ-KLMN")]).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("This form has expired"));
}

async fn lookups_are_rate_limited_per_address(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let mut browser = Browser::new(app.router.clone()).with_peer("203.0.113.9:4000");
    // Showing the empty page is not a lookup.
    for _ in 0..20 {
        browser
            .get("/auth/link")
            .await
            .assert_status(StatusCode::OK);
    }
    for attempt in 0..10 {
        let response = if attempt % 2 == 0 {
            enter_code(&mut browser, "ZZZZ-ZZZZ").await
        } else {
            browser.get("/auth/link?code=ZZZZ-ZZZZ").await
        };
        assert_refused(&response, UNKNOWN, "ZZZZ-ZZZZ");
    }
    let limited = enter_code(&mut browser, "WXYZ-KLMN").await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("retry-after"), Some("10"));
    let html = limited.text();
    assert!(
        html.contains("Too many attempts. Wait 10 seconds and try again."),
        "{html}"
    );
    assert!(html.contains(r#"value="WXYZ-KLMN""#));
    let link = browser.get("/auth/link?code=WXYZ-KLMN").await;
    link.assert_status(StatusCode::TOO_MANY_REQUESTS);
    // Another address is not held back, and the first one gets in again after the wait.
    let mut other = Browser::new(app.router.clone()).with_peer("198.51.100.1:4000");
    assert!(location(&enter_code(&mut other, "WXYZ-KLMN").await).starts_with("/auth/device/"));
    app.clock.advance(Duration::from_secs(10));
    assert!(location(&enter_code(&mut browser, "WXYZ-KLMN").await).starts_with("/auth/device/"));
}

test_on_both_backends!(
    the_code_page_asks_for_the_code,
    a_good_code_typed_any_way_leads_to_the_approval_page,
    the_code_of_a_complete_link_is_looked_up_at_once,
    an_unknown_code_is_refused_on_the_page_again,
    an_expired_code_is_refused,
    a_decided_code_is_refused_as_used,
    a_code_without_the_csrf_token_is_refused,
    lookups_are_rate_limited_per_address,
);
