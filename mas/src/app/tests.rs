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

/// Asserts the security headers of an HTML page (see `crate::csp`).
#[track_caller]
fn assert_page_headers(what: &str, response: &testing::TestResponse) {
    let csp = response
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("script-src"), "{what}: {csp}");
    assert_eq!(
        response.header("referrer-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

/// Walks every page route (signed out and signed in, GET and POST, good and bad requests):
/// every HTML answer carries the CSP and the referrer policy.
async fn every_html_response_carries_the_security_headers(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let id = ulid::Ulid::from_parts(1, 7).to_string();
    let authorize = format!(
        "/auth/authorize?client_id={}&response_type=code&scope=openid&state=s\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        client.id
    );
    let device = crate::oauth2::device::link::tests::device_grant(
        &app,
        &client,
        crate::oauth2::device::link::tests::DEVICE_SCOPE,
        crate::oauth2::device::link::tests::USER_CODE,
    )
    .await;
    let gets = [
        "/auth/".to_owned(),
        "/auth/login".to_owned(),
        "/auth/login?kind=continue_authorization_grant&id=x".to_owned(),
        "/auth/authorize".to_owned(),
        format!("/auth/authorize?client_id={}&response_type=x", client.id),
        authorize.clone(),
        format!("/auth/consent/{id}"),
        format!("/auth/complete-compat-sso/{id}"),
        "/auth/upstream/authorize/nope".to_owned(),
        "/auth/upstream/callback/nope".to_owned(),
        format!("/auth/upstream/link/{id}"),
        "/auth/account/".to_owned(),
        "/auth/account/?action=org.matrix.session_end&device_id=X".to_owned(),
        format!("/auth/account/sessions/{id}/end"),
        "/auth/account/cross-signing-reset".to_owned(),
        "/auth/link".to_owned(),
        "/auth/link?code=NOPE-NOPE".to_owned(),
        format!("/auth/device/{id}"),
        format!("/auth/device/{}", device.id),
    ];
    let posts = [
        "/auth/login".to_owned(),
        "/auth/logout".to_owned(),
        format!("/auth/consent/{id}"),
        format!("/auth/complete-compat-sso/{id}"),
        "/auth/upstream/callback/nope".to_owned(),
        format!("/auth/upstream/link/{id}"),
        format!("/auth/account/sessions/{id}/end"),
        "/auth/account/cross-signing-reset".to_owned(),
        "/auth/link".to_owned(),
        format!("/auth/device/{id}"),
        format!("/auth/device/{}", device.id),
    ];
    app.user_with_password("alice", "correct horse").await;
    let mut pages = std::collections::BTreeSet::new();
    for signed_in in [false, true] {
        let mut browser = app.browser();
        if signed_in {
            browser.login("alice", "correct horse").await;
            // A real consent page and the form_post page after it.
            let to_consent = browser
                .get(&format!("{authorize}&response_mode=form_post"))
                .await;
            let consent = to_consent.header("location").unwrap().to_owned();
            let page = browser.get(&consent).await;
            assert_page_headers(&consent, &page);
            let csrf = crate::app::testing::browser::csrf_of(&page.text());
            let answer = browser
                .post(&consent, &[("csrf", &csrf), ("action", "approve")])
                .await;
            assert_page_headers("form_post", &answer);
            pages.insert("consent and form_post".to_owned());
        }
        for path in &gets {
            let response = browser.get(path).await;
            if response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
            {
                assert_page_headers(path, &response);
                pages.insert(format!("GET {path} {signed_in}"));
            }
        }
        for path in &posts {
            let response = browser.post(path, &[("csrf", "forged")]).await;
            if response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
            {
                assert_page_headers(path, &response);
                pages.insert(format!("POST {path} {signed_in}"));
            }
        }
    }
    for expected in [
        "GET /auth/ false",
        "GET /auth/login false",
        "GET /auth/authorize false",
        "GET /auth/account/ true",
        "GET /auth/account/cross-signing-reset true",
        "POST /auth/login false",
        "GET /auth/link false",
        "GET /auth/link?code=NOPE-NOPE false",
        "POST /auth/link true",
        "consent and form_post",
    ] {
        assert!(
            pages.contains(expected),
            "{expected} was not an HTML page: {pages:?}"
        );
    }
    let device_page = format!("GET /auth/device/{} true", device.id);
    assert!(pages.contains(&device_page), "{device_page}: {pages:?}");
}

test_on_both_backends!(every_html_response_carries_the_security_headers);

/// A `csrf` cookie and token obtained by someone else and planted in a signed-in browser
/// (possible from a sibling subdomain on an http origin) do not pass a form.
async fn a_planted_csrf_cookie_cannot_submit_a_signed_in_form(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let mut attacker = app.browser();
    let page = attacker.get("/auth/login").await;
    let token = crate::app::testing::browser::csrf_of(&page.text());
    let planted = attacker.cookie("csrf").unwrap();

    let mut victim = app.browser();
    victim.login("alice", "correct horse").await;
    victim.plant_cookie("csrf", &planted);
    let response = victim.post("/auth/logout", &[("csrf", &token)]).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("This form has expired"));
    victim
        .get("/auth/account/")
        .await
        .assert_status(StatusCode::OK);
}

test_on_both_backends!(a_planted_csrf_cookie_cannot_submit_a_signed_in_form);

/// On an https origin the cookies are `__Host-` cookies at `/`; an unprefixed copy (which a
/// sibling subdomain could set) or a name sent twice reads as no cookie at all.
async fn https_cookies_are_host_cookies_and_ambiguous_ones_are_ignored(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let mut state = app.state.clone();
    let https: url::Url = "https://matrix.example.com/auth/".parse().unwrap();
    state.cookies = CookieManager::new(&crate::config::EncryptionKey([7; 32]), &https);
    let router = build_router(state, &appliance_listener());
    let mut browser = crate::app::testing::browser::Browser::new(router.clone());
    let page = browser.get("/auth/login").await;
    let set_cookie = page.header("set-cookie").unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-csrf="), "{set_cookie}");
    let attributes = crate::extract::cookies::cookie_attributes(&set_cookie);
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(attributes.contains(attribute), "{attribute}: {set_cookie}");
    }
    browser.login("alice", "correct horse").await;
    browser
        .get("/auth/account/")
        .await
        .assert_status(StatusCode::OK);

    let session = browser.cookie("__Host-session").unwrap();
    for cookie in [
        format!("__Host-session={session}; __Host-session={session}"),
        format!("__Host-session={session}; __Host-session=other"),
        format!("session={session}"),
    ] {
        let request = Request::get("/auth/account/")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap();
        let response = TestApp::send_to(&router, request).await;
        let location = response.header("location").unwrap_or_default().to_owned();
        assert!(location.starts_with("/auth/login"), "{cookie}: {location}");
    }
}

test_on_both_backends!(https_cookies_are_host_cookies_and_ambiguous_ones_are_ignored);
