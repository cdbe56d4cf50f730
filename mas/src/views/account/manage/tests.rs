//! Router tests of the account page's own forms: display name, email removal and primary
//! choice, deactivation, and signing in with an email address.

use axum::http::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::testing::TestApp;
use crate::app::testing::browser::{Browser, csrf_of, html_unescape};
use crate::app::testing::oauth::ApiApp;
use crate::clock::MockClock;
use crate::config::AccountConfig;
use crate::config::UpstreamOAuth2Config;
use crate::homeserver::{FieldAction, MockCall, MockFailure, MockUser};
use crate::jobs::JobContext;
use crate::model::{User, UserEmail};
use crate::storage::testing::test_on_both_backends;
use crate::storage::upstream_links::{NewUpstreamLink, add_upstream_link};
use crate::storage::{Database, emails, users};

const PASSWORD: &str = "correct horse";

/// A user with a password, known to the mock homeserver.
async fn person(app: &TestApp, username: &str) -> User {
    let user = app.user_with_password(username, PASSWORD).await;
    app.homeserver.insert_user(username, MockUser::default());
    user
}

/// A browser signed in as `username`, and the CSRF token of its account page.
async fn signed_in(app: &TestApp, username: &str) -> (Browser, String) {
    let mut browser = app.browser();
    browser.login(username, PASSWORD).await;
    let page = browser.get("/auth/account/").await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    (browser, csrf)
}

async fn add_email(app: &TestApp, user: &User, address: &str, verified: bool) -> UserEmail {
    app.clock.advance(std::time::Duration::from_millis(1));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    emails::add_email(
        &mut conn,
        &app.clock,
        &mut app.state.rng.fork(),
        user.id,
        address,
        verified,
    )
    .await
    .unwrap()
}

async fn list_emails(app: &TestApp, user: &User) -> Vec<String> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let listed = emails::list_emails(&mut conn, user.id).await.unwrap();
    listed.into_iter().map(|email| email.email).collect()
}

async fn primary(app: &TestApp, user: &User) -> Option<ulid::Ulid> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    emails::primary_email_id(&mut conn, user.id).await.unwrap()
}

/// Runs every queued job against the mock homeserver.
async fn run_jobs(app: &TestApp) {
    let ctx = JobContext::from(&app.state);
    crate::jobs::worker::run_due_jobs(&ctx, &CancellationToken::new())
        .await
        .unwrap();
}

/// The email lists the homeserver was given by provisioning passes, in order.
fn provisioned_emails(app: &TestApp) -> Vec<Vec<String>> {
    app.homeserver
        .take_calls()
        .into_iter()
        .filter_map(|call| match call {
            MockCall::ProvisionUser(request) => match request.emails {
                FieldAction::Set(emails) => Some(emails),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Account settings with one switch changed.
fn account(change: impl FnOnce(&mut AccountConfig)) -> AccountConfig {
    let mut config = AccountConfig::default();
    change(&mut config);
    config
}

async fn the_display_name_is_set_and_cleared_in_the_homeserver(db: Database) {
    let app = TestApp::new(db).await;
    person(&app, "alice").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    app.homeserver.take_calls();

    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", "  Alice Liddell ")],
        )
        .await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text()
            .contains("Your display name is now Alice Liddell.")
    );
    let calls = app.homeserver.take_calls();
    assert!(
        calls.contains(&MockCall::SetDisplayname(
            "alice".to_owned(),
            "Alice Liddell".to_owned()
        )),
        "{calls:?}"
    );

    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", "")],
        )
        .await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("Your display name was removed"));
    assert!(
        app.homeserver
            .take_calls()
            .contains(&MockCall::UnsetDisplayname("alice".to_owned()))
    );

    // Too long: the error is next to the field, nothing is sent.
    let long = "x".repeat(257);
    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", &long)],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    let html = page.text();
    assert!(html.contains(r#"id="displayname-error""#), "{html}");
    assert!(html.contains(r#"aria-describedby="displayname-hint displayname-error""#));
    assert!(!has_profile_call(&app.homeserver.take_calls()));

    // A bad CSRF token, or no session: nothing is sent.
    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", "nope"), ("displayname", "Mallory")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    let mut stranger = app.browser();
    let page = stranger.get("/auth/login").await;
    let stranger_csrf = csrf_of(&page.text());
    let page = stranger
        .post(
            "/auth/account/displayname",
            &[("csrf", &stranger_csrf), ("displayname", "Mallory")],
        )
        .await;
    page.assert_status(StatusCode::FOUND);
    assert!(page.header("location").unwrap().starts_with("/auth/login"));
    assert!(!has_profile_call(&app.homeserver.take_calls()));
}

fn has_profile_call(calls: &[MockCall]) -> bool {
    calls.iter().any(|call| {
        matches!(
            call,
            MockCall::SetDisplayname(..) | MockCall::UnsetDisplayname(_)
        )
    })
}

async fn the_display_name_is_refused_by_config_and_a_homeserver_failure_is_an_error_page(
    db: Database,
) {
    let app = TestApp::new(db).await;
    person(&app, "alice").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", "Alice")],
        )
        .await;
    page.assert_status(StatusCode::BAD_GATEWAY);
    assert!(page.text().contains("Display name not changed"));
    app.homeserver.set_failure(None);

    let app = app.with_account(account(|a| a.displayname_change_allowed = false));
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(
        !html.contains(r#"action="/auth/account/displayname""#),
        "{html}"
    );
    assert!(html.contains("The display name cannot be changed on this server."));
    app.homeserver.take_calls();
    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", "Alice")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert!(page.text().contains("cannot be changed on this server"));
    assert!(!has_profile_call(&app.homeserver.take_calls()));
}

async fn emails_are_made_primary_and_removed_and_the_homeserver_follows(db: Database) {
    let app = TestApp::new(db).await;
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let first = add_email(&app, &alice, "alice@example.org", true).await;
    let second = add_email(&app, &alice, "alice@work.example", true).await;
    let unverified = add_email(&app, &alice, "old@example.net", false).await;
    let bobs = add_email(&app, &bob, "bob@example.org", true).await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(html.contains("old@example.net") && html.contains("(not verified)"));
    assert!(!html.contains("bob@example.org"));
    assert!(html.contains(&format!("/auth/account/emails/{}/primary", second.id)));
    assert!(!html.contains(&format!("/auth/account/emails/{}/primary", unverified.id)));
    app.homeserver.take_calls();

    let path = format!("/auth/account/emails/{}/primary", second.id);
    let page = browser.post(&path, &[("csrf", &csrf)]).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("is now your primary email address"));
    assert_eq!(primary(&app, &alice).await, Some(second.id));
    run_jobs(&app).await;
    assert_eq!(
        provisioned_emails(&app),
        [vec![
            "alice@example.org".to_owned(),
            "alice@work.example".to_owned()
        ]]
    );

    // Removing the primary makes the oldest verified one left primary.
    let path = format!("/auth/account/emails/{}/remove", second.id);
    let page = browser.post(&path, &[("csrf", &csrf)]).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("alice@work.example was removed."));
    assert_eq!(primary(&app, &alice).await, Some(first.id));
    run_jobs(&app).await;
    assert_eq!(
        provisioned_emails(&app),
        [vec!["alice@example.org".to_owned()]]
    );
    assert_eq!(
        list_emails(&app, &alice).await,
        ["alice@example.org", "old@example.net"]
    );

    // Someone else's address, an unknown id, a removed one: 404; an unverified one cannot
    // be primary.
    for id in [
        bobs.id.to_string(),
        "nope".to_owned(),
        second.id.to_string(),
    ] {
        for action in ["remove", "primary"] {
            let path = format!("/auth/account/emails/{id}/{action}");
            browser
                .post(&path, &[("csrf", &csrf)])
                .await
                .assert_status(StatusCode::NOT_FOUND);
        }
    }
    let path = format!("/auth/account/emails/{}/primary", unverified.id);
    browser
        .post(&path, &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    let path = format!("/auth/account/emails/{}/remove", first.id);
    browser
        .post(&path, &[("csrf", "bad")])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert_eq!(list_emails(&app, &bob).await, ["bob@example.org"]);
    assert_eq!(primary(&app, &alice).await, Some(first.id));
}

async fn email_changes_are_refused_by_config(db: Database) {
    let app = TestApp::new(db)
        .await
        .with_account(account(|a| a.email_change_allowed = false));
    let alice = person(&app, "alice").await;
    let email = add_email(&app, &alice, "alice@example.org", true).await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(html.contains("Email addresses cannot be changed on this server."));
    assert!(
        !html.contains("/remove") && !html.contains(r#"name="email""#),
        "{html}"
    );
    for action in ["remove", "primary"] {
        let path = format!("/auth/account/emails/{}/{action}", email.id);
        let page = browser.post(&path, &[("csrf", &csrf)]).await;
        page.assert_status(StatusCode::FORBIDDEN);
        assert!(page.text().contains("cannot be changed on this server"));
    }
    assert_eq!(list_emails(&app, &alice).await, ["alice@example.org"]);
}

/// A provider that owns email and display name (`force`), and Alice linked to it.
async fn forcing_provider_app(db: Database) -> (TestApp, User) {
    let provider = json!({
        "id": "01J00000000000000000PR0V1D",
        "issuer": "https://idp.example.com/",
        "human_name": "Example SSO",
        "client_id": "mas",
        "client_secret": "secret",
        "scope": "openid profile email",
        "claims_imports": {
            "localpart": { "action": "require" },
            "displayname": { "action": "force" },
            "email": { "action": "force" },
        },
    });
    let config = UpstreamOAuth2Config {
        providers: vec![serde_json::from_value(provider).unwrap()],
    };
    let app = TestApp::with_upstream(db, MockClock::default(), &config).await;
    let alice = person(&app, "alice").await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let link = NewUpstreamLink {
        provider_id: "01J00000000000000000PR0V1D",
        subject: "alice-sub",
        user_id: Some(alice.id),
        human_account_name: None,
    };
    add_upstream_link(&mut conn, &app.clock, &mut app.state.rng.fork(), link)
        .await
        .unwrap();
    (app, alice)
}

async fn a_provider_that_forces_email_and_display_name_owns_them(db: Database) {
    let (app, alice) = forcing_provider_app(db).await;
    let email = add_email(&app, &alice, "alice@example.org", true).await;
    person(&app, "bob").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(
        html.contains("Your email address comes from Example SSO."),
        "{html}"
    );
    assert!(html.contains("Your display name comes from Example SSO."));
    let path = format!("/auth/account/emails/{}/remove", email.id);
    let page = browser.post(&path, &[("csrf", &csrf)]).await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert!(page.text().contains("comes from Example SSO"));
    let page = browser
        .post(
            "/auth/account/displayname",
            &[("csrf", &csrf), ("displayname", "A")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(list_emails(&app, &alice).await, ["alice@example.org"]);

    // Bob has no link: the provider does not own his attributes.
    let (mut browser, _) = signed_in(&app, "bob").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(!html.contains("comes from Example SSO"));
    assert!(html.contains(r#"action="/auth/account/displayname""#));
}

/// The OAuth-free way to get a token: a compat login on `device`.
async fn compat_login(
    app: &TestApp,
    identifier: serde_json::Value,
) -> crate::app::testing::TestResponse {
    let body = json!({
        "type": "m.login.password",
        "identifier": identifier,
        "password": PASSWORD,
    });
    app.post_json("/auth/_matrix/client/v3/login", &body).await
}

async fn deactivation_asks_the_password_ends_everything_and_refuses_sign_in(db: Database) {
    let app = ApiApp::new(db).await;
    let alice = person(&app, "alice").await;
    add_email(&app, &alice, "alice@example.org", true).await;
    let token = compat_login(&app, json!({ "type": "m.id.user", "user": "alice" })).await;
    token.assert_status(StatusCode::OK);
    let token = token.json()["access_token"].as_str().unwrap().to_owned();
    let mut browser = app.browser();
    browser.login("alice", PASSWORD).await;
    let page = browser.get("/auth/account/").await;
    assert!(html_unescape(&page.text()).contains(r#"href="/auth/account/deactivate""#));
    let page = browser.get("/auth/account/deactivate").await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(html.contains(r#"type="password""#) && html.contains("Also erase my messages"));
    let csrf = csrf_of(&html);

    // A wrong or missing password: refused next to the field.
    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("password", "wrong")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert!(page.text().contains("Wrong password."));
    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("password", "")],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains(r#"id="password-error""#));
    browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", "bad"), ("password", PASSWORD)],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert!(find(&app, "alice").await.deactivated_at.is_none());

    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("password", PASSWORD), ("erase", "on")],
        )
        .await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("Your account is closed"));
    assert!(!browser.has_cookie("session"));
    assert_eq!(
        browser.get("/auth/account/").await.status,
        StatusCode::FOUND
    );
    assert!(find(&app, "alice").await.deactivated_at.is_some());
    assert!(list_emails(&app, &alice).await.is_empty());
    assert_eq!(app.introspect(&token).await["active"], json!(false));
    app.homeserver.take_calls();
    run_jobs(&app).await;
    let calls = app.homeserver.take_calls();
    assert!(
        calls.contains(&MockCall::DeleteUser("alice".to_owned(), true)),
        "{calls:?}"
    );

    // Sign-in is refused everywhere.
    let response = browser.login_at("/auth/login", "alice", PASSWORD).await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .contains("This account has been deactivated.")
    );
    let response = compat_login(&app, json!({ "type": "m.id.user", "user": "alice" })).await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
}

async fn find(app: &TestApp, username: &str) -> User {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::find_user_by_username(&mut conn, username)
        .await
        .unwrap()
        .unwrap()
}

async fn the_deactivation_password_check_is_rate_limited_like_a_login(db: Database) {
    let app = TestApp::new(db).await;
    person(&app, "alice").await;
    let mut browser = app.browser().with_peer("203.0.113.7:4000");
    browser.login("alice", PASSWORD).await;
    let csrf = csrf_of(&browser.get("/auth/account/deactivate").await.text());
    // The login used one of the address's three attempts.
    for _ in 0..2 {
        browser
            .post(
                "/auth/account/deactivate",
                &[("csrf", &csrf), ("password", "wrong")],
            )
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    page.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(page.header("retry-after").is_some());
    assert!(page.text().contains("Too many attempts."));
    assert!(find(&app, "alice").await.deactivated_at.is_none());
}

async fn an_account_without_password_confirms_with_its_username(db: Database) {
    let app = TestApp::new(db).await;
    person(&app, "alice").await;
    let bob = app.user_without_password("bob").await;
    // Bob signs in through a browser session made directly (as an upstream login would).
    let mut rng = app.state.rng.fork();
    let session = crate::storage::browser_sessions::start_browser_session(
        &mut app.state.db.pool().acquire().await.unwrap(),
        &app.clock,
        &mut rng,
        &bob,
        None,
        None,
    )
    .await
    .unwrap();
    let mut browser = app.browser();
    let mut jar = app.state.cookies.jar(&axum::http::HeaderMap::new());
    jar.set_session(&mut rng, session.id).unwrap();
    let response = axum::response::IntoResponse::into_response((jar, ""));
    for value in response.headers().get_all(axum::http::header::SET_COOKIE) {
        let pair = value.to_str().unwrap().split(';').next().unwrap();
        let (name, content) = pair.split_once('=').unwrap();
        browser.plant_cookie(name, content);
    }
    let html = browser.get("/auth/account/deactivate").await.text();
    assert!(!html.contains(r#"type="password""#), "{html}");
    assert!(html.contains("Type your username (bob) to confirm"));
    let csrf = csrf_of(&html);
    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("username", "alice")],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains("Type your username, bob, to confirm."));
    let page = browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("username", "bob")],
        )
        .await;
    page.assert_status(StatusCode::OK);
    assert!(find(&app, "bob").await.deactivated_at.is_some());
    run_jobs(&app).await;
    assert!(
        app.homeserver
            .calls()
            .contains(&MockCall::DeleteUser("bob".to_owned(), false))
    );
    assert!(find(&app, "alice").await.deactivated_at.is_none());
}

async fn deactivation_is_refused_when_the_configuration_says_so(db: Database) {
    let app = TestApp::new(db)
        .await
        .with_account(account(|a| a.account_deactivation_allowed = false));
    person(&app, "alice").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(!html.contains("/auth/account/deactivate"));
    browser
        .get("/auth/account/deactivate")
        .await
        .assert_status(StatusCode::FORBIDDEN);
    browser
        .post(
            "/auth/account/deactivate",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert!(find(&app, "alice").await.deactivated_at.is_none());
    // Without a session: to the login page.
    let page = app.browser().get("/auth/account/deactivate").await;
    page.assert_status(StatusCode::FOUND);
}

async fn a_verified_email_signs_its_only_owner_in_when_allowed(db: Database) {
    let app = TestApp::new(db)
        .await
        .with_account(account(|a| a.login_with_email_allowed = true));
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let carol = person(&app, "carol").await;
    add_email(&app, &alice, "Alice@Example.org", true).await;
    add_email(&app, &bob, "shared@example.org", true).await;
    add_email(&app, &carol, "shared@example.org", true).await;
    add_email(&app, &carol, "pending@example.org", false).await;

    let mut browser = app.browser();
    let html = browser.get("/auth/login").await.text();
    assert!(html.contains("Username or email"), "{html}");
    let response = browser
        .login_at("/auth/login", " alice@EXAMPLE.org ", PASSWORD)
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    let html = html_unescape(&browser.get("/auth/account/").await.text());
    assert!(html.contains("@alice:example.com"));
    for address in [
        "shared@example.org",
        "pending@example.org",
        "nobody@example.org",
    ] {
        let response = app
            .browser()
            .login_at("/auth/login", address, PASSWORD)
            .await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(response.text().contains("Invalid username or password."));
    }

    // Compat: m.id.thirdparty with medium email.
    let identifier = json!({
        "type": "m.id.thirdparty", "medium": "email", "address": "alice@example.org"
    });
    let response = compat_login(&app, identifier).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json()["user_id"], json!("@alice:example.com"));
    let identifier = json!({
        "type": "m.id.thirdparty", "medium": "email", "address": "shared@example.org"
    });
    compat_login(&app, identifier)
        .await
        .assert_status(StatusCode::FORBIDDEN);
}

async fn email_sign_in_is_refused_when_not_allowed(db: Database) {
    let app = TestApp::new(db).await;
    let alice = person(&app, "alice").await;
    add_email(&app, &alice, "alice@example.org", true).await;
    let mut browser = app.browser();
    let html = browser.get("/auth/login").await.text();
    assert!(!html.contains("Username or email"));
    let response = browser
        .login_at("/auth/login", "alice@example.org", PASSWORD)
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
    let identifier = json!({
        "type": "m.id.thirdparty", "medium": "email", "address": "alice@example.org"
    });
    let response = compat_login(&app, identifier).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["errcode"], json!("M_UNKNOWN"));
}

/// The six-digit code of the last mail to `address`.
fn mailed_code(app: &TestApp, address: &str) -> String {
    let mail = app.outbox.to(address).pop().expect("a mail with the code");
    mail.text
        .split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no code in {}", mail.text))
        .to_owned()
}

async fn an_email_is_added_with_the_mailed_code_and_the_homeserver_follows(db: Database) {
    let app = TestApp::new(db).await;
    let alice = person(&app, "alice").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;

    // Implausible, then a good address.
    let page = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "not-an-address")],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains(r#"id="email-error""#));
    let response = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "alice@example.org")],
        )
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    let verify = response.header("location").unwrap().to_owned();
    assert!(
        verify.starts_with("/auth/account/emails/verify/"),
        "{verify}"
    );
    run_jobs(&app).await;
    let code = mailed_code(&app, "alice@example.org");
    let page = browser.get(&verify).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("alice@example.org"));

    // Another browser session (even of Alice) cannot use it.
    let (mut other, other_csrf) = signed_in(&app, "alice").await;
    other
        .get(&verify)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    other
        .post(&verify, &[("csrf", &other_csrf), ("code", &code)])
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // A wrong code, then the right one.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let page = browser
        .post(&verify, &[("csrf", &csrf), ("code", wrong)])
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains("That code is not right."));
    assert!(list_emails(&app, &alice).await.is_empty());
    browser
        .post(&verify, &[("csrf", "bad"), ("code", &code)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    app.homeserver.take_calls();
    let page = browser
        .post(&verify, &[("csrf", &csrf), ("code", &code)])
        .await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text()
            .contains("alice@example.org was added and verified.")
    );
    assert_eq!(list_emails(&app, &alice).await, ["alice@example.org"]);
    assert!(primary(&app, &alice).await.is_some());
    run_jobs(&app).await;
    assert_eq!(
        provisioned_emails(&app),
        [vec!["alice@example.org".to_owned()]]
    );
    // The code works once.
    let page = browser
        .post(&verify, &[("csrf", &csrf), ("code", &code)])
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains("used already"));

    // An unverified address the user has is marked verified; a new code is resent.
    let old = add_email(&app, &alice, "old@example.net", false).await;
    let response = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "OLD@example.net")],
        )
        .await;
    let verify = response.header("location").unwrap().to_owned();
    // Two codes per browser session at once, then one every 5 minutes.
    app.clock.advance(std::time::Duration::from_secs(301));
    let response = browser
        .post(&format!("{verify}/resend"), &[("csrf", &csrf)])
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    let verify = response.header("location").unwrap().to_owned();
    run_jobs(&app).await;
    let code = mailed_code(&app, "OLD@example.net");
    browser
        .post(&verify, &[("csrf", &csrf), ("code", &code)])
        .await
        .assert_status(StatusCode::OK);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let row = emails::find_email(&mut conn, old.id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.confirmed_at.is_some());
    drop(conn);
    assert_eq!(list_emails(&app, &alice).await.len(), 2);

    // Already one of hers; then the session's limit of two codes at once.
    let page = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "alice@example.org")],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST);
    assert!(page.text().contains("already one of yours"));
    let page = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "third@example.org")],
        )
        .await;
    page.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(page.header("retry-after").is_some());
}

async fn adding_an_email_is_refused_by_config_and_without_a_session(db: Database) {
    let app = TestApp::new(db)
        .await
        .with_account(account(|a| a.email_change_allowed = false));
    person(&app, "alice").await;
    let (mut browser, csrf) = signed_in(&app, "alice").await;
    let page = browser
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "alice@example.org")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    run_jobs(&app).await;
    assert!(app.outbox.messages().is_empty());
    let mut stranger = app.browser();
    let csrf = csrf_of(&stranger.get("/auth/login").await.text());
    let page = stranger
        .post(
            "/auth/account/emails",
            &[("csrf", &csrf), ("email", "x@example.org")],
        )
        .await;
    page.assert_status(StatusCode::FOUND);
    stranger
        .get("/auth/account/emails/verify/01J0000000000000000000000A")
        .await
        .assert_status(StatusCode::FOUND);
}

test_on_both_backends!(
    the_display_name_is_set_and_cleared_in_the_homeserver,
    the_display_name_is_refused_by_config_and_a_homeserver_failure_is_an_error_page,
    emails_are_made_primary_and_removed_and_the_homeserver_follows,
    email_changes_are_refused_by_config,
    a_provider_that_forces_email_and_display_name_owns_them,
    deactivation_asks_the_password_ends_everything_and_refuses_sign_in,
    the_deactivation_password_check_is_rate_limited_like_a_login,
    an_account_without_password_confirms_with_its_username,
    deactivation_is_refused_when_the_configuration_says_so,
    a_verified_email_signs_its_only_owner_in_when_allowed,
    email_sign_in_is_refused_when_not_allowed,
    an_email_is_added_with_the_mailed_code_and_the_homeserver_follows,
    adding_an_email_is_refused_by_config_and_without_a_session,
);
