//! Router tests of `GET/POST /account/password`, on both backends: the round trip through the
//! login page, a change (the old password refused afterwards, the new one accepted), signing out
//! the other sessions, and every refusal (CSRF, wrong current password, its rate limit, a
//! mismatch, a weak password, passwords off, changes not allowed, no password).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::app::build_router;
use crate::app::testing::appliance_listener;
use crate::app::testing::browser::{Browser, csrf_of, html_unescape, location};
use crate::app::testing::oauth::ApiApp;
use crate::config::HashingAlgorithm;
use crate::crypto::passwords::{Hasher, PasswordManager};
use crate::homeserver::MockUser;
use crate::model::User;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, browser_sessions};

const OLD: &str = "correct horse";
const NEW: &str = "a brand new staple of batteries";
const PAGE: &str = "/auth/account/password";

async fn person(app: &ApiApp, username: &str) -> User {
    let user = app.user_with_password(username, OLD).await;
    app.homeserver.insert_user(username, MockUser::default());
    user
}

/// A browser signed in as `username` (with `password`) and the page's CSRF token.
async fn on_the_page(app: &ApiApp, username: &str, password: &str) -> (Browser, String) {
    // A client address, so that the login limits per address apply.
    let mut browser = app.browser().with_peer("203.0.113.5:40000");
    browser.login(username, password).await;
    let page = browser.get(PAGE).await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    (browser, csrf)
}

async fn submit(
    browser: &mut Browser,
    csrf: &str,
    current: &str,
    new: &str,
    confirm: &str,
    sign_out_others: bool,
) -> crate::app::testing::TestResponse {
    let mut form = vec![
        ("csrf", csrf),
        ("current_password", current),
        ("new_password", new),
        ("new_password_confirm", confirm),
    ];
    if sign_out_others {
        form.push(("sign_out_others", "on"));
    }
    browser.post(PAGE, &form).await
}

/// A legacy password login; its status.
async fn compat_login(app: &ApiApp, username: &str, password: &str) -> StatusCode {
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": username },
        "password": password,
    });
    app.post_json("/auth/_matrix/client/v3/login", &body)
        .await
        .status
}

async fn signed_out_the_page_goes_through_login_and_back(db: Database) {
    let app = ApiApp::new(db).await;
    person(&app, "alice").await;
    let mut browser = app.browser();
    let response = browser.get(PAGE).await;
    response.assert_status(StatusCode::FOUND);
    let login = response.header("location").unwrap().to_owned();
    assert!(
        login.starts_with("/auth/login?kind=change_password"),
        "{login}"
    );
    let response = browser.login_at(&login, "alice", OLD).await;
    assert_eq!(location(&response), PAGE);
    let page = browser.get(PAGE).await;
    page.assert_status(StatusCode::OK);
    let html = html_unescape(&page.text());
    assert!(html.contains(r#"<label for="current_password">Current password</label>"#));
    assert!(html.contains(r#"name="sign_out_others" type="checkbox""#));
    // A POST without a session goes to the login page too (with a valid CSRF token).
    let mut fresh = app.browser();
    let page = fresh.get("/auth/login").await;
    let csrf = csrf_of(&page.text());
    let response = submit(&mut fresh, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::FOUND);
    assert!(
        response
            .header("location")
            .unwrap()
            .contains("kind=change_password")
    );
}

async fn a_change_replaces_the_password_and_keeps_sessions_unless_asked(db: Database) {
    let app = ApiApp::new(db).await;
    let alice = person(&app, "alice").await;
    let token = app.oauth_access_token(&alice).await;
    let (mut browser, csrf) = on_the_page(&app, "alice", OLD).await;
    // The new row must be newer (same-millisecond rows are ordered by their random id).
    app.clock.advance(Duration::from_secs(1));
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(html.contains("Password changed"), "{html}");
    assert!(!html.contains("signed out"));
    assert_eq!(
        compat_login(&app, "alice", OLD).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(compat_login(&app, "alice", NEW).await, StatusCode::OK);
    assert!(app.is_active(&token).await, "other sessions live on");
    // The browser session it was made in stays.
    browser.get(PAGE).await.assert_status(StatusCode::OK);
}

async fn signing_out_the_others_ends_every_session_but_this_browser(db: Database) {
    let app = ApiApp::new(db).await;
    let alice = person(&app, "alice").await;
    let token = app.oauth_access_token(&alice).await;
    assert_eq!(compat_login(&app, "alice", OLD).await, StatusCode::OK);
    let mut other = app.browser();
    other.login("alice", OLD).await;
    let (mut browser, csrf) = on_the_page(&app, "alice", OLD).await;
    app.clock.advance(Duration::from_secs(1));
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, true).await;
    response.assert_status(StatusCode::OK);
    // The OAuth session (and its login's browser session), the compat one, the other browser.
    assert!(
        response.text().contains("4 other sessions signed out."),
        "{}",
        response.text()
    );
    assert!(!app.is_active(&token).await);
    other.get(PAGE).await.assert_status(StatusCode::FOUND);
    browser.get(PAGE).await.assert_status(StatusCode::OK);
    let jobs: Vec<(String,)> = sqlx::query_as("SELECT queue_name FROM queue_jobs")
        .fetch_all(&mut *app.conn().await)
        .await
        .unwrap();
    assert!(jobs.iter().any(|(name,)| name == "sync-devices"));
    let mut conn = app.conn().await;
    let active = browser_sessions::finish_all_browser_sessions(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    assert_eq!(active, 1, "only this browser's session was left");
}

async fn a_wrong_current_password_is_refused_then_rate_limited(db: Database) {
    let app = ApiApp::new(db).await;
    person(&app, "alice").await;
    let (mut browser, csrf) = on_the_page(&app, "alice", OLD).await;
    // The login used one of the 3 attempts per address.
    for _ in 0..2 {
        let response = submit(&mut browser, &csrf, "wrong", NEW, NEW, false).await;
        response.assert_status(StatusCode::FORBIDDEN);
        let html = html_unescape(&response.text());
        assert!(
            html.contains("This is not your current password."),
            "{html}"
        );
        assert!(html.contains(r#"aria-describedby="current_password-error""#));
    }
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(response.header("retry-after").is_some());
    assert!(response.text().contains("Too many attempts."));
    assert_eq!(
        compat_login(&app, "alice", NEW).await,
        StatusCode::FORBIDDEN
    );
}

async fn bad_new_passwords_are_refused_next_to_their_field(db: Database) {
    let mut app = ApiApp::new(db).await;
    let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
    app.state.passwords = Some(Arc::new(PasswordManager::new([(1, argon2)], 3).unwrap()));
    app.router = build_router(app.state.clone(), &appliance_listener());
    person(&app, "alice").await;
    let (mut browser, csrf) = on_the_page(&app, "alice", OLD).await;
    let response = submit(&mut browser, &csrf, OLD, NEW, "something else", true).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let html = html_unescape(&response.text());
    assert!(
        html.contains("The two new passwords are not the same."),
        "{html}"
    );
    assert!(
        html.contains(r#"value="on" checked"#),
        "the box stays ticked"
    );
    let response = submit(&mut browser, &csrf, "", "password1", "password1", false).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let html = html_unescape(&response.text());
    assert!(html.contains("Enter your current password."));
    assert!(html.contains("This password is too easy to guess."));
    assert!(html.contains("this server needs at least <strong>strong</strong>"));
    assert!(html.contains("This is a very common password."), "{html}");
    let response = submit(&mut browser, &csrf, OLD, "", "", false).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert!(response.text().contains("Enter a new password."));
    // None of these spent a password check: the right one still works.
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::OK);
}

async fn a_bad_csrf_token_is_refused(db: Database) {
    let app = ApiApp::new(db).await;
    person(&app, "alice").await;
    let (mut browser, _) = on_the_page(&app, "alice", OLD).await;
    let response = submit(&mut browser, "forged", OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("This form has expired"));
    assert_eq!(compat_login(&app, "alice", OLD).await, StatusCode::OK);
}

async fn the_page_is_refused_when_changing_is_not_possible(db: Database) {
    let mut app = ApiApp::new(db).await;
    let alice = person(&app, "alice").await;
    let (browser, csrf) = on_the_page(&app, "alice", OLD).await;
    let cookies: Vec<(&str, String)> = ["session", "csrf"]
        .into_iter()
        .filter_map(|name| browser.cookie(name).map(|value| (name, value)))
        .collect();
    let same_browser = |app: &ApiApp| {
        let mut browser = Browser::new(app.router.clone());
        for (name, value) in &cookies {
            browser.plant_cookie(name, value);
        }
        browser
    };

    let mut site = (*app.state.site).clone();
    site.account.password_change_allowed = false;
    app.state.site = Arc::new(site.clone());
    app.router = build_router(app.state.clone(), &appliance_listener());
    let mut browser = same_browser(&app);
    let response = browser.get(PAGE).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("not allowed on this server"));
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::FORBIDDEN);
    let account = browser.get("/auth/account/").await;
    assert!(!account.text().contains("Change your password"));

    let passwords = app.state.passwords.take();
    site.account.password_change_allowed = true;
    app.state.site = Arc::new(site);
    app.router = build_router(app.state.clone(), &appliance_listener());
    let mut browser = same_browser(&app);
    let response = browser.get(PAGE).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("does not use passwords"));
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::FORBIDDEN);

    // An account without a password (as an upstream sign-in makes them).
    app.state.passwords = passwords;
    app.router = build_router(app.state.clone(), &appliance_listener());
    for table in ["user_session_authentications", "user_passwords"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE user_password_id IS NOT NULL"
        ))
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    }
    assert!(alice.locked_at.is_none());
    let mut browser = same_browser(&app);
    let response = browser.get(PAGE).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .contains("Your account has no password here")
    );
    let response = submit(&mut browser, &csrf, OLD, NEW, NEW, false).await;
    response.assert_status(StatusCode::FORBIDDEN);
}

test_on_both_backends!(
    signed_out_the_page_goes_through_login_and_back,
    a_change_replaces_the_password_and_keeps_sessions_unless_asked,
    signing_out_the_others_ends_every_session_but_this_browser,
    a_wrong_current_password_is_refused_then_rate_limited,
    bad_new_passwords_are_refused_next_to_their_field,
    a_bad_csrf_token_is_refused,
    the_page_is_refused_when_changing_is_not_possible,
);
