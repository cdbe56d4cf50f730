//! Router tests of password recovery (`/recover`, `/recover/complete`), on both backends: the
//! whole flow through the mail (every session ends, the link works once), the neutral answer for
//! unknown, unverified and locked addresses, and every refusal (recovery off, a bad address, the
//! rate limits, CSRF, a weak or mismatched password, an expired, used or unknown ticket, an
//! account locked after the mail).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::app::build_router;
use crate::app::testing::appliance_listener;
use crate::app::testing::browser::{Browser, csrf_of, hidden_field, html_unescape};
use crate::app::testing::oauth::ApiApp;
use crate::homeserver::MockUser;
use crate::model::{RECOVERY_TICKET_LIFETIME_MS, User};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, emails, users};

const OLD: &str = "correct horse";
const NEW: &str = "a brand new staple of batteries";

/// A test app with recovery on (the memory mailer counts as mail).
async fn recovery_app(db: Database) -> ApiApp {
    let mut app = ApiApp::new(db).await;
    let mut site = (*app.state.site).clone();
    site.account.password_recovery_enabled = true;
    app.state.site = Arc::new(site);
    app.router = build_router(app.state.clone(), &appliance_listener());
    app
}

/// A user with a password and a verified (or not) address.
async fn person(app: &ApiApp, username: &str, address: &str, verified: bool) -> User {
    let user = app.user_with_password(username, OLD).await;
    app.homeserver.insert_user(username, MockUser::default());
    let mut conn = app.conn().await;
    let mut rng = app.state.rng.fork();
    emails::add_email(&mut conn, &app.clock, &mut rng, user.id, address, verified)
        .await
        .unwrap();
    user
}

/// Asks for a link for `address` from `browser`; the answer.
async fn ask(browser: &mut Browser, address: &str) -> crate::app::testing::TestResponse {
    let page = browser.get("/auth/recover").await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    browser
        .post("/auth/recover", &[("csrf", &csrf), ("email", address)])
        .await
}

/// The ticket of the only link mailed to `address`.
fn mailed_ticket(app: &ApiApp, address: &str) -> String {
    let sent = app.outbox.to(address);
    assert_eq!(sent.len(), 1, "{:?}", app.outbox.messages());
    let text = &sent[0].text;
    let start = text.find("ticket=").expect("a link") + "ticket=".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// Posts a new password for `ticket`; the answer.
async fn set(
    browser: &mut Browser,
    ticket: &str,
    new: &str,
    confirm: &str,
) -> crate::app::testing::TestResponse {
    let page = browser
        .get(&format!("/auth/recover/complete?ticket={ticket}"))
        .await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    let fields = [
        ("csrf", csrf.as_str()),
        ("ticket", ticket),
        ("new_password", new),
        ("new_password_confirm", confirm),
    ];
    browser.post("/auth/recover/complete", &fields).await
}

async fn compat_login(app: &ApiApp, username: &str, password: &str) -> (StatusCode, String) {
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": username },
        "password": password,
    });
    let response = app.post_json("/auth/_matrix/client/v3/login", &body).await;
    let token = response
        .json()
        .get("access_token")
        .and_then(|token| token.as_str())
        .unwrap_or_default()
        .to_owned();
    (response.status, token)
}

async fn a_mailed_link_sets_the_password_once_and_ends_every_session(db: Database) {
    let app = recovery_app(db).await;
    let alice = person(&app, "alice", "alice@example.com", true).await;
    let oauth = app.oauth_access_token(&alice).await;
    let (status, compat) = compat_login(&app, "alice", OLD).await;
    assert_eq!(status, StatusCode::OK);
    let mut signed_in = app.browser();
    signed_in.login("alice", OLD).await;

    let mut browser = app.browser();
    let login = browser.get("/auth/login").await.text();
    assert!(html_unescape(&login).contains(r#"<a href="/auth/recover">Forgot password?</a>"#));
    let response = ask(&mut browser, "  Alice@Example.com ").await;
    response.assert_status(StatusCode::OK);
    assert!(response.text().contains("If an account has the address"));
    assert_eq!(app.run_jobs().await, 1);
    let sent = app.outbox.to("alice@example.com");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, "Reset your password on example.com");
    assert!(sent[0].text.contains("@alice:example.com"));
    let html = html_unescape(sent[0].html.as_deref().unwrap());
    assert!(html.contains("http://localhost:8000/auth/recover/complete?ticket="));
    let ticket = mailed_ticket(&app, "alice@example.com");
    assert!(ticket.len() >= 22, "at least 128 bits: {ticket}");
    // Only the hash is stored.
    let stored: Vec<(String,)> = sqlx::query_as("SELECT ticket_sha256 FROM user_recovery_tickets")
        .fetch_all(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(stored, [(crate::crypto::sha256_hex(&ticket),)]);

    let page = browser
        .get(&format!("/auth/recover/complete?ticket={ticket}"))
        .await;
    page.assert_status(StatusCode::OK);
    assert_eq!(
        hidden_field(&page.text(), "ticket").as_deref(),
        Some(&*ticket)
    );
    app.clock.advance(Duration::from_secs(60));
    let response = set(&mut browser, &ticket, NEW, NEW).await;
    response.assert_status(StatusCode::OK);
    assert!(
        response.text().contains("Password changed"),
        "{}",
        response.text()
    );

    assert!(!app.is_active(&oauth).await);
    assert!(!app.is_active(&compat).await);
    signed_in
        .get("/auth/account/")
        .await
        .assert_status(StatusCode::FOUND);
    assert_eq!(
        compat_login(&app, "alice", OLD).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(compat_login(&app, "alice", NEW).await.0, StatusCode::OK);
    let jobs: Vec<(String,)> = sqlx::query_as("SELECT queue_name FROM queue_jobs")
        .fetch_all(&mut *app.conn().await)
        .await
        .unwrap();
    assert!(jobs.iter().any(|(name,)| name == "sync-devices"));

    // The link works once.
    let page = browser
        .get(&format!("/auth/recover/complete?ticket={ticket}"))
        .await;
    page.assert_status(StatusCode::GONE);
    assert!(page.text().contains("Ask for a new link"));
}

async fn the_answer_is_the_same_for_unknown_unverified_and_locked_addresses(db: Database) {
    let app = recovery_app(db).await;
    person(&app, "bob", "bob@example.com", false).await;
    let carol = person(&app, "carol", "carol@example.com", true).await;
    users::lock_user(&mut *app.conn().await, &app.clock, carol.id)
        .await
        .unwrap();
    let known = person(&app, "dave", "dave@example.com", true).await;
    let mut bodies = Vec::new();
    for (n, address) in ["nobody@example.com", "bob@example.com", "carol@example.com"]
        .into_iter()
        .chain(["dave@example.com"])
        .enumerate()
    {
        let mut browser = app.browser().with_peer(&format!("198.51.100.{n}:4000"));
        let response = ask(&mut browser, address).await;
        response.assert_status(StatusCode::OK);
        bodies.push(response.text().replace(address, "ADDRESS"));
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "one answer"
    );
    assert_eq!(app.run_jobs().await, 4, "one job per request, known or not");
    let sent = app.outbox.messages();
    assert_eq!(
        sent.len(),
        1,
        "only dave's verified, unlocked address: {sent:?}"
    );
    assert_eq!(sent[0].to, "dave@example.com");
    assert!(known.locked_at.is_none());
}

async fn a_refused_new_password_keeps_the_ticket(db: Database) {
    let mut app = recovery_app(db).await;
    let argon2 = crate::crypto::passwords::Hasher::new(
        crate::config::HashingAlgorithm::Argon2id,
        None,
        None,
        false,
    )
    .unwrap();
    app.state.passwords = Some(Arc::new(
        crate::crypto::passwords::PasswordManager::new([(1, argon2)], 3).unwrap(),
    ));
    app.router = build_router(app.state.clone(), &appliance_listener());
    person(&app, "alice", "alice@example.com", true).await;
    let mut browser = app.browser();
    ask(&mut browser, "alice@example.com").await;
    app.run_jobs().await;
    let ticket = mailed_ticket(&app, "alice@example.com");
    let response = set(&mut browser, &ticket, NEW, "different").await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .contains("The two new passwords are not the same.")
    );
    let response = set(&mut browser, &ticket, "password1", "password1").await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let html = html_unescape(&response.text());
    assert!(
        html.contains("Strength of this password: <strong>"),
        "{html}"
    );
    assert!(html.contains(&format!(r#"name="ticket" value="{ticket}""#)));
    app.clock.advance(Duration::from_secs(1));
    let response = set(&mut browser, &ticket, NEW, NEW).await;
    response.assert_status(StatusCode::OK);
}

async fn expired_unknown_and_locked_tickets_get_a_clear_page(db: Database) {
    let app = recovery_app(db).await;
    let alice = person(&app, "alice", "alice@example.com", true).await;
    person(&app, "bob", "bob@example.com", true).await;
    let mut browser = app.browser();
    ask(&mut browser, "alice@example.com").await;
    ask(&mut browser, "bob@example.com").await;
    app.run_jobs().await;
    let alices = mailed_ticket(&app, "alice@example.com");
    let bobs = mailed_ticket(&app, "bob@example.com");

    for path in [
        "/auth/recover/complete".to_owned(),
        "/auth/recover/complete?ticket=nope".to_owned(),
    ] {
        let page = browser.get(&path).await;
        page.assert_status(StatusCode::GONE);
        assert!(page.text().contains("This link no longer works"));
    }

    // Locked after the mail: a clear page, at GET and at POST.
    let page = browser
        .get(&format!("/auth/recover/complete?ticket={alices}"))
        .await;
    let csrf = csrf_of(&page.text());
    users::lock_user(&mut *app.conn().await, &app.clock, alice.id)
        .await
        .unwrap();
    let page = browser
        .get(&format!("/auth/recover/complete?ticket={alices}"))
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert!(page.text().contains("cannot be recovered"));
    let fields = [
        ("csrf", csrf.as_str()),
        ("ticket", alices.as_str()),
        ("new_password", NEW),
        ("new_password_confirm", NEW),
    ];
    let response = browser.post("/auth/recover/complete", &fields).await;
    response.assert_status(StatusCode::FORBIDDEN);

    // Expired after one hour.
    let expiry = u64::try_from(RECOVERY_TICKET_LIFETIME_MS).unwrap();
    app.clock.advance(Duration::from_millis(expiry));
    let page = browser
        .get(&format!("/auth/recover/complete?ticket={bobs}"))
        .await;
    page.assert_status(StatusCode::GONE);
    // A fresh CSRF token (the old one expired too).
    let csrf = csrf_of(&browser.get("/auth/recover").await.text());
    let fields = [
        ("csrf", csrf.as_str()),
        ("ticket", bobs.as_str()),
        ("new_password", NEW),
        ("new_password_confirm", NEW),
    ];
    let response = browser.post("/auth/recover/complete", &fields).await;
    response.assert_status(StatusCode::GONE);
    assert_eq!(compat_login(&app, "bob", OLD).await.0, StatusCode::OK);
}

async fn requests_are_checked_and_rate_limited(db: Database) {
    let app = recovery_app(db).await;
    let mut browser = app.browser().with_peer("203.0.113.7:4000");
    for bad in [
        "",
        "no-at-sign",
        "two@@example.com",
        "a b@example.com",
        "@example.com",
    ] {
        let response = ask(&mut browser, bad).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(response.text().contains("Enter an email address"), "{bad}");
    }
    // Per address: 3, whatever the client address.
    for n in 0..3 {
        let mut other = app.browser().with_peer(&format!("198.51.100.{n}:4000"));
        ask(&mut other, "target@example.com")
            .await
            .assert_status(StatusCode::OK);
    }
    let mut other = app.browser().with_peer("198.51.100.9:4000");
    let response = ask(&mut other, "Target@example.com").await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(response.header("retry-after").is_some());
    assert!(response.text().contains("Too many requests."));
    // Per client address: 3, whatever the address asked for.
    for n in 0..3 {
        ask(&mut browser, &format!("someone{n}@example.com"))
            .await
            .assert_status(StatusCode::OK);
    }
    let response = ask(&mut browser, "someone9@example.com").await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    // A forged CSRF token.
    let response = browser
        .post(
            "/auth/recover",
            &[("csrf", "forged"), ("email", "x@example.com")],
        )
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(app.run_jobs().await, 6);
}

async fn recovery_off_says_it_is_unavailable(db: Database) {
    let app = ApiApp::new(db).await;
    person(&app, "alice", "alice@example.com", true).await;
    let mut browser = app.browser();
    let login = browser.get("/auth/login").await;
    assert!(!login.text().contains("Forgot password?"));
    for path in ["/auth/recover", "/auth/recover/complete?ticket=x"] {
        let page = browser.get(path).await;
        page.assert_status(StatusCode::NOT_FOUND);
        assert!(page.text().contains("Password recovery is unavailable"));
    }
    let csrf = csrf_of(&login.text());
    let response = browser
        .post(
            "/auth/recover",
            &[("csrf", &csrf), ("email", "alice@example.com")],
        )
        .await;
    response.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(app.run_jobs().await, 0);
}

test_on_both_backends!(
    a_mailed_link_sets_the_password_once_and_ends_every_session,
    the_answer_is_the_same_for_unknown_unverified_and_locked_addresses,
    a_refused_new_password_keeps_the_ticket,
    expired_unknown_and_locked_tickets_get_a_clear_page,
    requests_are_checked_and_rate_limited,
    recovery_off_says_it_is_unavailable,
);
