//! Router-level tests of the registration pages, on both backends: the whole flow with a token
//! and the terms, `prompt=create`, and each refusal (closed, mail off, every field, taken
//! names, CSRF, the rate limit, a token used up meanwhile, a foreign or finished registration).

use std::sync::Arc;

use axum::http::{StatusCode, header};

use crate::app::testing::browser::{Browser, csrf_of, hidden_field, html_unescape, location};
use crate::app::testing::{TestApp, TestResponse, appliance_listener};
use crate::app::{SiteConfig, build_router};
use crate::config::HashingAlgorithm;
use crate::crypto::passwords::{Hasher, PasswordManager};
use crate::email::Mailer;
use crate::homeserver::MockFailure;
use crate::model::JobStatus;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, jobs, registrations, users};

const STRONG: &str = "correct horse battery staple 42";
const TOS: &str = "https://example.com/terms";

/// A test app with registration open: a token and the terms required, no email (mail with
/// codes is tested with the email step), and a minimum password complexity of 3.
async fn open_app(db: Database) -> TestApp {
    let app = TestApp::new(db).await;
    reconfigure(app, |site| {
        site.account.password_registration_enabled = true;
        site.account.password_registration_email_required = false;
        site.account.password_registration_token_required = true;
        site.tos_uri = Some(TOS.parse().unwrap());
    })
}

/// `app` with its site configuration changed and a password manager asking for score 3.
fn reconfigure(mut app: TestApp, change: impl FnOnce(&mut SiteConfig)) -> TestApp {
    let mut site = SiteConfig::clone(&app.state.site);
    change(&mut site);
    app.state.site = Arc::new(site);
    let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
    app.state.passwords = Some(Arc::new(PasswordManager::new([(1, argon2)], 3).unwrap()));
    app.router = build_router(app.state.clone(), &appliance_listener());
    app
}

async fn issue_token(app: &TestApp, token: &str, limit: Option<u64>) {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    registrations::add_registration_token(&mut conn, &app.clock, &mut rng, token, limit, None)
        .await
        .unwrap();
}

/// The good fields of the form, with the CSRF token of `html` and its hidden fields.
fn good_form(html: &str, username: &str) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("csrf", csrf_of(html)),
        ("username", username.to_owned()),
        ("password", STRONG.to_owned()),
        ("password_confirm", STRONG.to_owned()),
        ("token", "welcome".to_owned()),
        ("accept_terms", "on".to_owned()),
    ];
    for name in ["kind", "id"] {
        if let Some(value) = hidden_field(html, name) {
            form.push((name, value));
        }
    }
    form
}

/// POSTs `form` with `changes` (a `None` value drops the field).
async fn submit(
    browser: &mut Browser,
    form: &[(&'static str, String)],
    changes: &[(&'static str, Option<&str>)],
) -> TestResponse {
    let mut form = form.to_vec();
    for (name, value) in changes {
        form.retain(|(key, _)| key != name);
        if let Some(value) = value {
            form.push((name, (*value).to_owned()));
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post("/auth/register", &pairs).await
}

/// The registration form's page in `browser`.
async fn form_page(browser: &mut Browser, path: &str) -> String {
    let page = browser.get(path).await;
    page.assert_status(StatusCode::OK);
    html_unescape(&page.text())
}

/// Registers `username` up to the display-name step; its path.
async fn start(browser: &mut Browser, username: &str) -> String {
    let html = form_page(browser, "/auth/register").await;
    let response = submit(browser, &good_form(&html, username), &[]).await;
    response.assert_status(StatusCode::SEE_OTHER);
    let next = location(&response);
    assert!(next.ends_with("/display-name"), "{next}");
    next
}

async fn display_name_form(browser: &mut Browser, path: &str) -> String {
    csrf_of(&form_page(browser, path).await)
}

async fn a_token_registration_creates_the_account_in_one_step(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", Some(1)).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    for shown in [
        r#"name="token""#,
        TOS,
        r#"name="password_confirm""#,
        "@username:example.com",
    ] {
        assert!(html.contains(shown), "{shown}");
    }
    assert!(!html.contains(r#"name="email""#));
    let step = start(&mut browser, "alice").await;
    assert!(browser.has_cookie("user-registrations"));
    assert!(!browser.has_cookie("session"));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert!(
        users::find_user_by_username(&mut conn, "alice")
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);

    let page = form_page(&mut browser, &step).await;
    assert!(page.contains("@alice:example.com"));
    let csrf = csrf_of(&page);
    let done = browser
        .post(
            &step,
            &[
                ("csrf", &csrf),
                ("display_name", " Alice A. "),
                ("action", "set"),
            ],
        )
        .await;
    done.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/auth/account/");
    assert!(browser.has_cookie("session"));
    assert!(!browser.has_cookie("user-registrations"));

    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let alice = users::find_user_by_username(&mut conn, "alice")
        .await
        .unwrap()
        .unwrap();
    let token = registrations::find_registration_token_by_token(&mut conn, "welcome")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.times_used, 1);
    let queued = jobs::list_jobs(&mut conn, JobStatus::Available, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].payload["user_id"], alice.id.to_string());
    assert_eq!(queued[0].payload["set_display_name"], "Alice A.");
    drop(conn);

    // Signed in: the account page answers, and the password works.
    browser
        .get("/auth/account/")
        .await
        .assert_status(StatusCode::OK);
    let mut other = app.browser();
    other.login("alice", STRONG).await;
    // The finished registration is gone for good.
    browser
        .get(&step)
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

async fn skipping_the_display_name_provisions_without_one(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut browser = app.browser();
    let step = start(&mut browser, "bob").await;
    let csrf = display_name_form(&mut browser, &step).await;
    let done = browser
        .post(
            &step,
            &[
                ("csrf", &csrf),
                ("display_name", "Ignored"),
                ("action", "skip"),
            ],
        )
        .await;
    done.assert_status(StatusCode::SEE_OTHER);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let queued = jobs::list_jobs(&mut conn, JobStatus::Available, 10)
        .await
        .unwrap();
    assert_eq!(queued[0].queue_name, "provision-user");
    assert!(
        queued[0].payload.get("set_display_name").is_none(),
        "{:?}",
        queued[0].payload
    );
}

async fn closed_registration_is_a_not_found_page(db: Database) {
    let app = TestApp::new(db).await;
    let response = app.get("/auth/register").await;
    response.assert_status(StatusCode::NOT_FOUND);
    assert!(response.text().contains("Registration is closed"));
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/login").await;
    assert!(!html.contains("Create an account"));
    let posted = submit(&mut browser, &good_form(&html, "alice"), &[]).await;
    posted.assert_status(StatusCode::NOT_FOUND);

    // Passwords off closes it too.
    let mut app = reconfigure(app, |site| {
        site.account.password_registration_enabled = true;
        site.account.password_registration_email_required = false;
    });
    app.state.passwords = None;
    app.router = build_router(app.state.clone(), &appliance_listener());
    app.get("/auth/register")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

async fn a_required_email_without_mail_closes_registration(db: Database) {
    let mut app = TestApp::new(db).await;
    // Mail off: `email.transport: blackhole`.
    app.state.mailer =
        Arc::new(Mailer::blackhole("noreply@example.com", "noreply@example.com").unwrap());
    let app = reconfigure(app, |site| {
        site.account.password_registration_enabled = true
    });
    let response = app.get("/auth/register").await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.text().contains("cannot send"));
    let discovery = app
        .get("/auth/.well-known/openid-configuration")
        .await
        .json();
    assert_eq!(
        discovery["prompt_values_supported"],
        serde_json::json!(["login"])
    );
}

async fn each_bad_field_is_refused_next_to_it(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    let form = good_form(&html, "alice");
    type Case<'a> = (Vec<(&'static str, Option<&'a str>)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("username", Some("Alice"))],
            "username",
            "Use only lower-case letters",
        ),
        (
            vec![("username", Some(""))],
            "username",
            "Choose a username.",
        ),
        (
            vec![("username", Some("4242"))],
            "username",
            "cannot be only digits",
        ),
        (
            vec![("username", Some("_irc_x"))],
            "username",
            "cannot start with an underscore",
        ),
        (
            vec![("password_confirm", Some("other"))],
            "password_confirm",
            "do not match",
        ),
        (
            vec![("password", None), ("password_confirm", None)],
            "password",
            "Choose a password.",
        ),
        (
            vec![("token", Some(""))],
            "token",
            "Enter the registration token.",
        ),
        (vec![("token", Some("nope"))], "token", "not valid"),
        (
            vec![("accept_terms", None)],
            "accept_terms",
            "Accept the terms of service",
        ),
    ];
    for (changes, field, message) in cases {
        let response = submit(&mut browser, &form, &changes).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        let text = response.text();
        assert!(text.contains(message), "{field}: {text}");
        assert!(
            text.contains(&format!(r#"id="{field}-error""#)),
            "{field} error not tied to the field"
        );
    }
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let queued = jobs::list_jobs(&mut conn, JobStatus::Available, 10)
        .await
        .unwrap();
    assert!(queued.is_empty());
}

async fn a_weak_password_shows_the_strength_meter(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    let response = submit(
        &mut browser,
        &good_form(&html, "alice"),
        &[
            ("password", Some("password1")),
            ("password_confirm", Some("password1")),
        ],
    )
    .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let text = response.text();
    assert!(text.contains("too easy to guess"), "{text}");
    assert!(
        text.contains("Strength of this password: <strong>very weak</strong>"),
        "{text}"
    );
    assert!(
        text.contains("needs at least <strong>strong</strong>"),
        "{text}"
    );
    assert!(text.contains("common password"), "zxcvbn's warning: {text}");
    assert!(!text.contains("password1"), "the password is never echoed");
    // The username counts as guessable.
    let response = submit(
        &mut browser,
        &good_form(&html, "correcthorsebattery"),
        &[
            ("password", Some("correcthorsebattery")),
            ("password_confirm", Some("correcthorsebattery")),
        ],
    )
    .await;
    response.assert_status(StatusCode::BAD_REQUEST);
}

async fn taken_and_reserved_usernames_are_refused(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    app.user_with_password("alice", STRONG).await;
    app.homeserver.reserve_localpart("irc_bridge");
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    for taken in ["alice", "irc_bridge"] {
        let response = submit(&mut browser, &good_form(&html, taken), &[]).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(
            response.text().contains("This username is taken."),
            "{taken}"
        );
    }
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let response = submit(&mut browser, &good_form(&html, "carol"), &[]).await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.text().contains("could not be checked"));
}

async fn a_bad_csrf_token_is_refused(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    let response = submit(
        &mut browser,
        &good_form(&html, "alice"),
        &[("csrf", Some("forged"))],
    )
    .await;
    response.assert_status(StatusCode::FORBIDDEN);
    let step = start(&mut browser, "alice").await;
    let response = browser
        .post(&step, &[("csrf", "forged"), ("action", "skip")])
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
}

async fn registrations_are_rate_limited_per_address(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut browser = app.browser().with_peer("203.0.113.9:1234");
    let html = form_page(&mut browser, "/auth/register").await;
    // Refused forms do not count.
    let refused = submit(
        &mut browser,
        &good_form(&html, "x"),
        &[("token", Some("nope"))],
    )
    .await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    for name in ["u1", "u2", "u3"] {
        let response = submit(&mut browser, &good_form(&html, name), &[]).await;
        response.assert_status(StatusCode::SEE_OTHER);
    }
    let limited = submit(&mut browser, &good_form(&html, "u4"), &[]).await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(limited.text().contains("Too many accounts"));
}

async fn a_token_used_up_meanwhile_creates_nothing(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", Some(1)).await;
    let (mut first, mut second) = (app.browser(), app.browser());
    let step_one = start(&mut first, "alice").await;
    let step_two = start(&mut second, "bob").await;
    let csrf = display_name_form(&mut first, &step_one).await;
    first
        .post(&step_one, &[("csrf", &csrf), ("action", "skip")])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let csrf = display_name_form(&mut second, &step_two).await;
    let refused = second
        .post(&step_two, &[("csrf", &csrf), ("action", "skip")])
        .await;
    refused.assert_status(StatusCode::FORBIDDEN);
    assert!(refused.text().contains("no longer valid"));
    assert!(!second.has_cookie("session"));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    assert!(
        users::find_user_by_username(&mut conn, "bob")
            .await
            .unwrap()
            .is_none()
    );
    let queued = jobs::list_jobs(&mut conn, JobStatus::Available, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "alice's provisioning only");
}

async fn a_registration_of_another_browser_is_not_found(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let mut owner = app.browser();
    let step = start(&mut owner, "alice").await;
    let mut stranger = app.browser();
    let page = stranger.get(&step).await;
    page.assert_status(StatusCode::NOT_FOUND);
    assert!(page.text().contains("Registration not found"));
    let html = form_page(&mut stranger, "/auth/register").await;
    let csrf = csrf_of(&html);
    stranger
        .post(&step, &[("csrf", &csrf), ("action", "skip")])
        .await
        .assert_status(StatusCode::NOT_FOUND);
    for bad in [
        "/auth/register/nope/display-name",
        "/auth/register/01J0000000000000000000REG0/display-name",
    ] {
        owner.get(bad).await.assert_status(StatusCode::NOT_FOUND);
    }
}

async fn prompt_create_leads_to_registration_and_back_to_the_grant(db: Database) {
    let app = open_app(db).await;
    issue_token(&app, "welcome", None).await;
    let client = app.native_test_client().await;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client.id.to_string()),
            ("redirect_uri", client.metadata.redirect_uris[0].to_string()),
            ("response_type", "code".to_owned()),
            ("scope", "openid".to_owned()),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            ),
            ("code_challenge_method", "S256".to_owned()),
            ("prompt", "create".to_owned()),
        ])
        .finish();
    let mut browser = app.browser();
    let to_register = location(&browser.get(&format!("/auth/authorize?{query}")).await);
    assert!(
        to_register.starts_with("/auth/register?kind=continue_authorization_grant&id="),
        "{to_register}"
    );
    let grant_id = to_register.rsplit('=').next().unwrap().to_owned();
    let html = form_page(&mut browser, &to_register).await;
    assert_eq!(
        hidden_field(&html, "id").as_deref(),
        Some(grant_id.as_str())
    );
    let response = submit(&mut browser, &good_form(&html, "alice"), &[]).await;
    let step = location(&response);
    let csrf = display_name_form(&mut browser, &step).await;
    let done = browser
        .post(&step, &[("csrf", &csrf), ("action", "skip")])
        .await;
    assert_eq!(location(&done), format!("/auth/consent/{grant_id}"));
    browser
        .get(&location(&done))
        .await
        .assert_status(StatusCode::OK);

    // The login page links registration, with the action.
    let login = form_page(
        &mut app.browser(),
        &format!("/auth/login?kind=continue_authorization_grant&id={grant_id}"),
    )
    .await;
    assert!(login.contains(&format!(
        r#"<a href="/auth/register?kind=continue_authorization_grant&id={grant_id}">Create an account</a>"#
    )), "{login}");
    let discovery = app
        .get("/auth/.well-known/openid-configuration")
        .await
        .json();
    assert_eq!(
        discovery["prompt_values_supported"],
        serde_json::json!(["login", "create"])
    );
}

/// A test app with an email address required (mail on), no token, no terms.
async fn email_app(db: Database) -> TestApp {
    let app = TestApp::new(db).await;
    reconfigure(app, |site| {
        site.account.password_registration_enabled = true;
    })
}

/// The code of the newest mail to `address`, after running the queued jobs.
async fn mailed_code(app: &TestApp, address: &str) -> String {
    app.run_jobs().await;
    let mail = app.outbox.to(address).pop().expect("a code mail");
    mail.subject.split(' ').next().unwrap().to_owned()
}

async fn an_email_registration_needs_the_mailed_code(db: Database) {
    let app = email_app(db).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    assert!(html.contains(r#"name="email""#) && !html.contains(r#"name="token""#));
    let form = vec![
        ("csrf", csrf_of(&html)),
        ("username", "dora".to_owned()),
        ("password", STRONG.to_owned()),
        ("password_confirm", STRONG.to_owned()),
    ];
    let missing = submit(&mut browser, &form, &[]).await;
    missing.assert_status(StatusCode::BAD_REQUEST);
    assert!(missing.text().contains("Enter your email address."));
    let bad = submit(&mut browser, &form, &[("email", Some("dora at example"))]).await;
    assert!(bad.text().contains("like name@example.com"));
    let response = submit(&mut browser, &form, &[("email", Some("Dora@Example.org"))]).await;
    let verify = location(&response);
    assert!(verify.ends_with("/verify-email"), "{verify}");
    let code = mailed_code(&app, "dora@example.org").await;
    assert_eq!(code.len(), 6);

    // The display-name step waits for the code.
    let step = verify.replace("/verify-email", "/display-name");
    assert_eq!(location(&browser.get(&step).await), verify);
    let page = form_page(&mut browser, &verify).await;
    assert!(page.contains("Dora@Example.org"));
    let csrf = csrf_of(&page);
    let empty = browser
        .post(&verify, &[("csrf", &csrf), ("code", "")])
        .await;
    empty.assert_status(StatusCode::BAD_REQUEST);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = browser
        .post(&verify, &[("csrf", &csrf), ("code", wrong)])
        .await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    assert!(refused.text().contains("That code is not right."));
    let accepted = browser
        .post(&verify, &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(location(&accepted), step);
    // Verified: the code page moves on.
    assert_eq!(location(&browser.get(&verify).await), step);

    let csrf = display_name_form(&mut browser, &step).await;
    let done = browser
        .post(&step, &[("csrf", &csrf), ("action", "skip")])
        .await;
    assert_eq!(location(&done), "/auth/account/");
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let dora = users::find_user_by_username(&mut conn, "dora")
        .await
        .unwrap()
        .unwrap();
    let emails = crate::storage::emails::list_emails(&mut conn, dora.id)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].email, "Dora@Example.org");
    assert!(emails[0].confirmed_at.is_some());
}

async fn a_new_code_can_be_sent_and_an_expired_one_is_refused(db: Database) {
    let app = email_app(db).await;
    let mut browser = app.browser();
    let html = form_page(&mut browser, "/auth/register").await;
    let form = vec![
        ("csrf", csrf_of(&html)),
        ("username", "erin".to_owned()),
        ("password", STRONG.to_owned()),
        ("password_confirm", STRONG.to_owned()),
        ("email", "erin@example.org".to_owned()),
    ];
    let verify = location(&submit(&mut browser, &form, &[]).await);
    let first = mailed_code(&app, "erin@example.org").await;
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    let csrf = csrf_of(&form_page(&mut browser, &verify).await);
    let expired = browser
        .post(&verify, &[("csrf", &csrf), ("code", &first)])
        .await;
    expired.assert_status(StatusCode::BAD_REQUEST);
    assert!(expired.text().contains("expired"), "{}", expired.text());

    let resend = format!("{verify}/resend");
    let sent = browser.post(&resend, &[("csrf", &csrf)]).await;
    sent.assert_status(StatusCode::OK);
    assert!(sent.text().contains("A new code is on its way."));
    let second = mailed_code(&app, "erin@example.org").await;
    assert_eq!(app.outbox.to("erin@example.org").len(), 2);
    app.clock.advance(std::time::Duration::from_secs(1));
    browser
        .post(&resend, &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::OK);
    let limited = browser.post(&resend, &[("csrf", &csrf)]).await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // The newest code counts.
    let newest = mailed_code(&app, "erin@example.org").await;
    assert_ne!(newest, second);
    let accepted = browser
        .post(&verify, &[("csrf", &csrf), ("code", &newest)])
        .await;
    assert!(location(&accepted).ends_with("/display-name"));
    // Another browser cannot use the page.
    let mut stranger = app.browser();
    stranger
        .get(&verify)
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

test_on_both_backends!(
    an_email_registration_needs_the_mailed_code,
    a_new_code_can_be_sent_and_an_expired_one_is_refused,
    a_token_registration_creates_the_account_in_one_step,
    skipping_the_display_name_provisions_without_one,
    closed_registration_is_a_not_found_page,
    a_required_email_without_mail_closes_registration,
    each_bad_field_is_refused_next_to_it,
    a_weak_password_shows_the_strength_meter,
    taken_and_reserved_usernames_are_refused,
    a_bad_csrf_token_is_refused,
    registrations_are_rate_limited_per_address,
    a_token_used_up_meanwhile_creates_nothing,
    a_registration_of_another_browser_is_not_found,
    prompt_create_leads_to_registration_and_back_to_the_grant,
);
