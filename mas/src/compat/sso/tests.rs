//! Router-level tests of the legacy SSO login on both backends: the redirect's validation,
//! the way through the login page to the "continue" page, CSRF, fulfilment and the token's
//! single use within 30 s.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::*;
use crate::app::testing::browser::{csrf_of, location, url_params};
use crate::app::testing::{TestApp, TestResponse};
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

const REDIRECT: &str = "/auth/_matrix/client/v3/login/sso/redirect";

/// A GET through the whole router (the `compat` resource serves the redirect).
async fn get_redirect(app: &TestApp, path_and_query: &str) -> TestResponse {
    let request = Request::get(path_and_query).body(Body::empty()).unwrap();
    TestApp::send_to(&app.router, request).await
}

fn matrix_error(response: &TestResponse, status: StatusCode, errcode: &str) {
    response.assert_status(status);
    assert_eq!(response.json()["errcode"], errcode, "{response:?}");
}

/// Starts a login for `redirect_url`; returns the path of its "continue" page (with query).
async fn start(app: &TestApp, suffix: &str, redirect_url: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirectUrl", redirect_url)
        .finish();
    let response = get_redirect(app, &format!("{REDIRECT}{suffix}?{query}")).await;
    let target = location(&response);
    let rest = target
        .strip_prefix("http://localhost:8000")
        .unwrap_or_else(|| panic!("not under the public base: {target}"));
    assert!(rest.starts_with("/auth/complete-compat-sso/"), "{rest}");
    rest.to_owned()
}

async fn redirect_validates_redirect_url(db: Database) {
    let app = TestApp::new(db).await;
    matrix_error(
        &get_redirect(&app, REDIRECT).await,
        StatusCode::BAD_REQUEST,
        "M_MISSING_PARAM",
    );
    for bad in [
        "not a url",
        "https://user:secret@client.example.com/cb",
        "https://user@client.example.com/cb",
        "/relative/path",
        "javascript:alert(document.domain)//",
        "JavaScript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirectUrl", bad)
            .finish();
        matrix_error(
            &get_redirect(&app, &format!("{REDIRECT}?{query}")).await,
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        );
    }
    // Mobile apps' custom schemes, the trailing slash and an (ignored) idp are fine.
    start(&app, "", "im.fluffychat://login").await;
    start(&app, "/", "https://client.example.com/cb").await;
    start(&app, "/oidc-whatever", "https://client.example.com/cb").await;
}

async fn redirect_carries_the_action(db: Database) {
    let app = TestApp::new(db).await;
    for (param, value, expected) in [
        ("action", "register", Some("register")),
        ("org.matrix.msc3824.action", "login", Some("login")),
        ("action", "bogus", None),
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirectUrl", "https://client.example.com/cb")
            .append_pair(param, value)
            .finish();
        let target = location(&get_redirect(&app, &format!("{REDIRECT}?{query}")).await);
        assert_eq!(
            url_params(&target, false).get("action").map(String::as_str),
            expected,
            "{target}"
        );
    }
}

async fn sso_login_goes_through_login_and_continue_to_a_one_time_token(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let page = start(&app, "", "https://client.example.com/cb?state=x").await;
    let page_path = page.split('?').next().unwrap().to_owned();

    // No browser session: off to the login page, which comes back here.
    let mut browser = app.browser();
    let login_page = location(&browser.get(&page).await);
    assert!(
        login_page.contains("kind=continue_compat_sso_login"),
        "{login_page}"
    );
    let back = location(
        &browser
            .login_at(&login_page, "alice", "correct horse")
            .await,
    );
    assert_eq!(back, page_path);

    let continue_page = browser.get(&back).await;
    continue_page.assert_status(StatusCode::OK);
    let html = continue_page.text();
    assert!(html.contains("client.example.com"), "{html}");
    let csrf = csrf_of(&html);

    // CSRF first.
    browser
        .post(&back, &[("csrf", "forged")])
        .await
        .assert_status(StatusCode::FORBIDDEN);

    let target = location(&browser.post(&back, &[("csrf", &csrf)]).await);
    assert!(
        target.starts_with("https://client.example.com/cb?state=x&loginToken="),
        "{target}"
    );
    let token = url_params(&target, false)["loginToken"].clone();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));

    // The page is done with.
    browser
        .post(&back, &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    browser
        .get(&back)
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    // The token works once, for alice and the browser session that continued.
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    app.clock.advance(Duration::from_secs(29));
    let (user_id, user_session_id) = take_login_token(&mut conn, &app.clock, &token)
        .await
        .unwrap()
        .expect("the token is valid");
    assert_eq!(user_id, alice.id);
    let login_id: Ulid = page_path.rsplit('/').next().unwrap().parse().unwrap();
    let stored = compat_sso_logins::find_compat_sso_login(&mut conn, login_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.user_session_id, Some(user_session_id));
    assert_eq!(
        take_login_token(&mut conn, &app.clock, &token)
            .await
            .unwrap(),
        None
    );
}

async fn login_token_expires_after_thirty_seconds(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let page = start(&app, "", "https://client.example.com/cb").await;
    let mut browser = app.browser();
    browser.login("alice", "correct horse").await;
    let continue_page = browser.get(&page).await;
    continue_page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&continue_page.text());
    let target = location(&browser.post(&page, &[("csrf", &csrf)]).await);
    let token = url_params(&target, false)["loginToken"].clone();
    app.clock.advance(Duration::from_millis(30_001));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert_eq!(
        take_login_token(&mut conn, &app.clock, &token)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        take_login_token(&mut conn, &app.clock, "nope")
            .await
            .unwrap(),
        None
    );
}

/// Logs alice in through the SSO pages; returns the `loginToken` handed to the client.
async fn login_token_for_alice(app: &TestApp) -> String {
    let page = start(app, "", "https://client.example.com/cb").await;
    let mut browser = app.browser();
    browser.login("alice", "correct horse").await;
    let continue_page = browser.get(&page).await;
    continue_page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&continue_page.text());
    let target = location(&browser.post(&page, &[("csrf", &csrf)]).await);
    url_params(&target, false)["loginToken"].clone()
}

async fn login_token_logs_the_client_in_once_with_a_compat_session(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let token = login_token_for_alice(&app).await;
    let body = serde_json::json!({ "type": "m.login.token", "token": token });
    let response = app.post_json("/auth/_matrix/client/v3/login", &body).await;
    response.assert_status(StatusCode::OK);
    let answer = response.json();
    assert_eq!(answer["user_id"], "@alice:example.com");
    let access_token = answer["access_token"].as_str().unwrap();
    assert!(access_token.starts_with("mct_"), "{answer}");
    let device_id = answer["device_id"].as_str().unwrap();
    assert!(app.homeserver.devices("alice").contains(device_id));

    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let stored = crate::storage::compat::find_compat_access_token_by_sha256(
        &mut conn,
        &sha256_hex(access_token),
    )
    .await
    .unwrap()
    .unwrap();
    let session = crate::storage::compat::find_compat_session(&mut conn, stored.session_id)
        .await
        .unwrap()
        .unwrap();
    assert!(session.user_session_id.is_some(), "{session:?}");

    let again = app.post_json("/auth/_matrix/client/v3/login", &body).await;
    matrix_error(&again, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn unknown_logins_are_not_found(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = app.browser();
    for id in ["not-a-ulid", &Ulid::from_parts(1, 2).to_string()] {
        browser
            .get(&format!("/auth/complete-compat-sso/{id}"))
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
}

/// A redirect for `https://client.example.com/cb` from `peer`.
async fn redirect_from(app: &TestApp, peer: &str) -> TestResponse {
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    let mut request = Request::get(format!(
        "{REDIRECT}?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb"
    ))
    .body(Body::empty())
    .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    TestApp::send_to(&app.router, request).await
}

async fn pending_logins(app: &TestApp) -> i64 {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM compat_sso_logins")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    n
}

async fn redirects_are_rate_limited_per_address(db: Database) {
    let app = TestApp::new(db).await;
    // Ten from one IPv6 /64, each address different.
    for n in 1..=10 {
        let response = redirect_from(&app, &format!("[2001:db8:7:8::{n:x}]:4000")).await;
        location(&response);
    }
    let response = redirect_from(&app, "[2001:db8:7:8:ffff::1]:4000").await;
    matrix_error(&response, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert_eq!(response.json()["retry_after_ms"], 30_000);
    assert_eq!(response.header("retry-after"), Some("30"));
    assert_eq!(
        pending_logins(&app).await,
        10,
        "the refused request stored nothing"
    );
    // Another /64, and an IPv4 address, are other clients.
    location(&redirect_from(&app, "[2001:db8:7:9::1]:4000").await);
    location(&redirect_from(&app, "198.51.100.20:4000").await);
    // One interval later, one more.
    app.clock.advance(Duration::from_secs(30));
    location(&redirect_from(&app, "[2001:db8:7:8::1]:4000").await);
    let response = redirect_from(&app, "[2001:db8:7:8::1]:4000").await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
}

test_on_both_backends!(
    redirect_validates_redirect_url,
    redirect_carries_the_action,
    sso_login_goes_through_login_and_continue_to_a_one_time_token,
    login_token_expires_after_thirty_seconds,
    unknown_logins_are_not_found,
    login_token_logs_the_client_in_once_with_a_compat_session,
    redirects_are_rate_limited_per_address,
);
