//! Router tests of the upstream login on SQLite, against the in-process
//! [`FakeProvider`]: the whole flow (authorize, callback by query and `form_post`, first and
//! later logins, post-auth actions, the confirmation page, `on_conflict`), every refusal page
//! with its log line and nothing created, the login page's buttons and SSO-only redirect, and
//! the compat layer in SSO-only mode.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use url::Url;

use crate::app::build_router;
use crate::app::testing::browser::{Browser, csrf_of, location};
use crate::app::testing::{TestApp, TestResponse, appliance_listener};
use crate::config::UpstreamOAuth2Config;
use crate::homeserver::MockCall;
use crate::storage::Database;
use crate::storage::{upstream_links, users};
use crate::upstream::testing::{FakeProvider, Knobs, PROVIDER_ID};

const AUTHORIZE: &str = "/auth/upstream/authorize/01J00000000000000000PR0V1D";
const CALLBACK_URL: &str =
    "http://localhost:8000/auth/upstream/callback/01J00000000000000000PR0V1D";

/// Runs each `async fn name(db: Database)` as a test on a fresh SQLite database.
macro_rules! sqlite_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::storage::testing::on_sqlite(super::$name).await;
            }
        }
    )*};
}

/// The warn lines logged while it lives (on this thread: the tests' runtime is
/// single-threaded, so the handlers and the fake provider log here too).
struct LogCapture {
    lines: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn start() -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedWriter(lines.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        Self {
            lines,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap()).into_owned()
    }

    /// Exactly one refusal line with this reason, naming the provider.
    #[track_caller]
    fn assert_refusal(&self, reason: &str) {
        let text = self.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("upstream login refused"))
            .collect();
        assert_eq!(lines.len(), 1, "one refusal line expected: {text}");
        assert!(
            lines[0].contains(&format!("reason=\"{reason}\""))
                || lines[0].contains(&format!("reason={reason}")),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(PROVIDER_ID), "{}", lines[0]);
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
}

/// A fake provider and an app that has it as its only provider (the Cloudron shape).
async fn setup(db: Database) -> (FakeProvider, TestApp) {
    let fake = FakeProvider::start().await;
    let config = fake.upstream_config();
    let app = TestApp::with_upstream(db, fake.clock.clone(), &config).await;
    (fake, app)
}

/// [`setup`] with the provider's config changed by `change` (its JSON form).
async fn setup_with(db: Database, change: impl FnOnce(&mut Value)) -> (FakeProvider, TestApp) {
    let fake = FakeProvider::start().await;
    let mut provider = serde_json::to_value(fake.provider_config()).unwrap();
    change(&mut provider);
    let config = UpstreamOAuth2Config {
        providers: vec![serde_json::from_value(provider).unwrap()],
    };
    let app = TestApp::with_upstream(db, fake.clock.clone(), &config).await;
    (fake, app)
}

/// Turns password login off (and rebuilds the router).
fn without_passwords(mut app: TestApp) -> TestApp {
    app.state.passwords = None;
    app.router = build_router(app.state.clone(), &appliance_listener());
    app
}

/// `path` of an absolute URL on the test app (with its query).
fn local_path(url: &str) -> String {
    let rest = url
        .strip_prefix("http://localhost:8000")
        .unwrap_or_else(|| panic!("not on the public base: {url}"));
    rest.to_owned()
}

/// Starts a login at `authorize` (path and query); returns the provider URL it redirects to.
async fn start(browser: &mut Browser, authorize: &str) -> Url {
    let response = browser.get(authorize).await;
    location(&response).parse().unwrap()
}

/// The callback path (with query) the provider sends the browser back to.
fn approve(fake: &FakeProvider, provider_url: &Url) -> String {
    let callback = fake.approve(provider_url);
    assert!(
        callback.as_str().starts_with(CALLBACK_URL),
        "redirect URI: {callback}"
    );
    local_path(callback.as_str())
}

/// A whole login through the provider in `browser`; the answer to the callback.
async fn login_through(
    fake: &FakeProvider,
    browser: &mut Browser,
    authorize: &str,
) -> TestResponse {
    let provider_url = start(browser, authorize).await;
    let callback = approve(fake, &provider_url);
    browser.get(&callback).await
}

/// Row counts of what a login may create.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    users: i64,
    links: i64,
    emails: i64,
    jobs: i64,
    browser_sessions: i64,
}

async fn counts(app: &TestApp) -> Counts {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut count = async |table: &str| -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        n
    };
    Counts {
        users: count("users").await,
        links: count("upstream_oauth_links").await,
        emails: count("user_emails").await,
        jobs: count("queue_jobs").await,
        browser_sessions: count("user_sessions").await,
    }
}

const NOTHING: Counts = Counts {
    users: 0,
    links: 0,
    emails: 0,
    jobs: 0,
    browser_sessions: 0,
};

/// The queued jobs as (queue, payload).
async fn jobs(app: &TestApp) -> Vec<(String, Value)> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT queue_name, payload FROM queue_jobs ORDER BY queue_job_id")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(queue, payload)| (queue, serde_json::from_str(&payload).unwrap()))
        .collect()
}

async fn user_named(app: &TestApp, username: &str) -> Option<crate::model::User> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::find_user_by_username(&mut conn, username)
        .await
        .unwrap()
}

// --- the flow ---

async fn first_login_creates_the_account_and_a_browser_session(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    assert!(browser.has_cookie("upstream-oauth2-sessions"));
    assert!(
        provider_url.as_str().starts_with(&fake.issuer),
        "{provider_url}"
    );
    let params: std::collections::HashMap<String, String> =
        provider_url.query_pairs().into_owned().collect();
    assert_eq!(params["redirect_uri"], CALLBACK_URL);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["state"].len(), 32);
    assert!(!params["nonce"].is_empty());

    let callback = approve(&fake, &provider_url);
    let response = browser.get(&callback).await;
    assert_eq!(location(&response), "/auth/");
    assert!(browser.has_cookie("session"));

    let alice = user_named(&app, "alice").await.expect("alice created");
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let link = upstream_links::find_upstream_link_by_subject(&mut conn, PROVIDER_ID, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.user_id, Some(alice.id));
    let emails = crate::storage::emails::list_emails(&mut conn, alice.id)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].email, "alice@example.org");
    assert!(emails[0].confirmed_at.is_some(), "stored as verified");
    let (method,): (Option<String>,) = sqlx::query_as(
        "SELECT upstream_oauth_authorization_session_id FROM user_session_authentications",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(method.is_some(), "authentication recorded as upstream");
    drop(conn);
    assert_eq!(
        jobs(&app).await,
        vec![(
            "provision-user".to_owned(),
            json!({ "user_id": alice.id.to_string(), "set_display_name": "Alice Liddell" })
        )]
    );
    let index = browser.get("/auth/").await;
    index.assert_status(StatusCode::OK);
    assert!(
        index.text().contains("@alice:example.com"),
        "{}",
        index.text()
    );
}

async fn a_later_login_maps_to_the_same_user(db: Database) {
    let (fake, app) = setup(db).await;
    let mut first = app.browser();
    login_through(&fake, &mut first, AUTHORIZE).await;
    let alice = user_named(&app, "alice").await.unwrap();
    // The provider changed the person's name and address: the account stays as it is.
    fake.set_user(json!({
        "sub": "alice", "preferred_username": "alice2", "name": "Alice L.",
        "email": "new@example.org", "email_verified": true,
    }));
    let mut second = app.browser();
    let response = login_through(&fake, &mut second, AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    let index = second.get("/auth/").await;
    assert!(
        index.text().contains("@alice:example.com"),
        "{}",
        index.text()
    );
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            emails: 1,
            jobs: 1,
            browser_sessions: 2,
        }
    );
    assert!(user_named(&app, "alice2").await.is_none());
    assert_eq!(user_named(&app, "alice").await.unwrap().id, alice.id);
}

/// A login through the provider with a post-auth action: the legacy SSO redirect naming the
/// provider goes straight to it, and the login ends on the "continue" page.
async fn the_post_auth_action_continues_after_the_login(db: Database) {
    let (fake, app) = setup(db).await;
    let redirect = format!(
        "/auth/_matrix/client/v3/login/sso/redirect/{PROVIDER_ID}?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb"
    );
    let response = app.get(&redirect).await;
    let authorize = local_path(&location(&response));
    assert!(
        authorize.starts_with(&format!("{AUTHORIZE}?kind=continue_compat_sso_login&id=")),
        "{authorize}"
    );
    let login_id = authorize.rsplit('=').next().unwrap().to_owned();
    let mut browser = app.browser();
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(
        location(&response),
        format!("/auth/complete-compat-sso/{login_id}")
    );
    let page = browser.get(&location(&response)).await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text().contains("client.example.com"),
        "{}",
        page.text()
    );
}

/// An unknown `idp` is ignored (the "continue" page, as before).
async fn an_unknown_idp_in_the_legacy_redirect_is_ignored(db: Database) {
    let (_fake, app) = setup(db).await;
    let response = app
        .get("/auth/_matrix/client/v3/login/sso/redirect/oidc-github?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb")
        .await;
    let target = local_path(&location(&response));
    assert!(target.starts_with("/auth/complete-compat-sso/"), "{target}");
}

/// `form_post`: the provider's cross-site POST arrives without our cookie; the page re-posts
/// it from our origin, which then completes the login.
async fn form_post_answers_are_completed_after_one_resubmission(db: Database) {
    let (fake, app) = setup_with(db, |provider| {
        provider["response_mode"] = json!("form_post");
    })
    .await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    assert!(provider_url.as_str().contains("response_mode=form_post"));
    let callback = fake.approve(&provider_url);
    let fields: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    let path = local_path(callback.as_str());
    let path = path.split('?').next().unwrap().to_owned();
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut cross_site = app.browser();
    let page = cross_site.post(&path, &form).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(html.contains(r#"name="mas_resubmitted""#), "{html}");
    assert!(html.contains("Finish signing in"), "{html}");
    assert!(html.contains("Fake IdP"), "{html}");
    assert_eq!(counts(&app).await, NOTHING);

    let mut resubmitted = form.clone();
    resubmitted.push(("mas_resubmitted", "1"));
    let response = browser.post(&path, &resubmitted).await;
    assert_eq!(location(&response), "/auth/");
    assert!(user_named(&app, "alice").await.is_some());
}

/// Two logins pending in two tabs of one browser, their callbacks arriving together: both
/// end signed in as the one new user.
async fn two_tabs_completing_at_once_create_one_account(db: Database) {
    let (fake, app) = setup(db).await;
    let get = async |path: &str, cookies: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(cookies) = cookies {
            request = request.header(header::COOKIE, cookies);
        }
        app.request(request.body(Body::empty()).unwrap()).await
    };
    let first = get(AUTHORIZE, None).await;
    let cookies = cookie_header(&first);
    let second = get(AUTHORIZE, Some(&cookies)).await;
    let cookies = cookie_header(&second);
    let callbacks = [first, second].map(|response| {
        let provider_url: Url = location(&response).parse().unwrap();
        approve(&fake, &provider_url)
    });
    let (a, b) = tokio::join!(
        get(&callbacks[0], Some(&cookies)),
        get(&callbacks[1], Some(&cookies))
    );
    assert_eq!(location(&a), "/auth/");
    assert_eq!(location(&b), "/auth/");
    let counts = counts(&app).await;
    assert_eq!((counts.users, counts.links, counts.jobs), (1, 1, 1));
}

// --- refusals: a page, one warn line, nothing created ---

/// Checks a refusal page.
#[track_caller]
fn assert_page(response: &TestResponse, status: StatusCode, words: &[&str]) {
    response.assert_status(status);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8"),
        "an HTML page"
    );
    let text = response
        .text()
        .replace("&quot;", "\"")
        .replace("&#x27;", "'");
    for word in words {
        assert!(text.contains(word), "{word:?} not in {text}");
    }
}

async fn an_unknown_provider_is_a_404_page(db: Database) {
    let (_fake, app) = setup(db).await;
    let log = LogCapture::start();
    let response = app
        .get("/auth/upstream/authorize/01J0000000000000000000SEC0")
        .await;
    assert_page(&response, StatusCode::NOT_FOUND, &["not available"]);
    assert!(
        log.text().contains("reason=\"unknown_provider\""),
        "{}",
        log.text()
    );
    let response = app
        .get("/auth/upstream/callback/01J0000000000000000000SEC0?code=x&state=y")
        .await;
    assert_page(&response, StatusCode::NOT_FOUND, &[]);
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_provider_that_is_down_is_a_502_page(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_down(true);
    let log = LogCapture::start();
    let mut browser = app.browser();
    let response = browser.get(AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_GATEWAY,
        &["Fake IdP is not available"],
    );
    log.assert_refusal("provider_unreachable");
    drop(log);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM upstream_oauth_authorization_sessions")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(sessions, 0, "nothing stored before the redirect");
    drop(conn);

    // Down between the redirect and the callback: the code cannot be exchanged.
    fake.set_down(false);
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);
    fake.set_down(true);
    let log = LogCapture::start();
    let response = browser.get(&callback).await;
    assert_page(
        &response,
        StatusCode::BAD_GATEWAY,
        &["Fake IdP is not available"],
    );
    log.assert_refusal("provider_unreachable");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_cancelled_login_says_so(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set(|knobs| knobs.deny = true);
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["Sign-in was cancelled", "Fake IdP"],
    );
    log.assert_refusal("cancelled");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn another_provider_error_shows_its_code(db: Database) {
    let (_fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let state = provider_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let log = LogCapture::start();
    let response = browser
        .get(&format!(
            "/auth/upstream/callback/{PROVIDER_ID}?error=temporarily_unavailable&error_description=maintenance&state={state}"
        ))
        .await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["temporarily_unavailable"],
    );
    log.assert_refusal("provider_error");
    assert!(log.text().contains("maintenance"), "{}", log.text());
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_provider_error_without_this_browsers_state_is_a_state_mismatch(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let state = provider_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let callback = format!("/auth/upstream/callback/{PROVIDER_ID}");
    // A forged link: no state, an unknown state, this browser's state in another browser.
    for (mut who, path) in [
        (
            app.browser(),
            format!("{callback}?error=access_denied&error_description=forged"),
        ),
        (
            app.browser(),
            format!("{callback}?error=access_denied&state=unknown"),
        ),
        (
            app.browser(),
            format!("{callback}?error=temporarily_unavailable&state={state}"),
        ),
        (
            app.browser(),
            format!("{callback}?error=access_denied&state={state}"),
        ),
    ] {
        let log = LogCapture::start();
        let response = who.get(&path).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["not started in this browser"],
        );
        assert!(!response.text().contains("Sign-in was cancelled"), "{path}");
        log.assert_refusal("state_mismatch");
    }
    // The same browser, an unknown state: still a mismatch, not "cancelled".
    let log = LogCapture::start();
    let response = browser
        .get(&format!("{callback}?error=access_denied&state=x{state}"))
        .await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["not started in this browser"],
    );
    log.assert_refusal("state_mismatch");
    drop(log);
    // The real answer still completes the login in this browser.
    let response = browser.get(&approve(&fake, &provider_url)).await;
    location(&response);
    assert_eq!(counts(&app).await.users, 1);
}

async fn a_state_not_started_in_this_browser_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);

    // Another browser (a login CSRF attempt), a tampered state, no state at all.
    let tampered = callback.replace("state=", "state=x");
    let without = format!("/auth/upstream/callback/{PROVIDER_ID}?code=code-0");
    for (mut who, path) in [
        (app.browser(), callback.as_str()),
        (app.browser(), tampered.as_str()),
        (app.browser(), without.as_str()),
    ] {
        let log = LogCapture::start();
        let response = who.get(path).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["not started in this browser"],
        );
        log.assert_refusal("state_mismatch");
    }
    let mut tampered_browser = browser;
    let log = LogCapture::start();
    let response = tampered_browser.get(&tampered).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    log.assert_refusal("state_mismatch");
    assert_eq!(fake.log().token.len(), 0, "no code was exchanged");
    assert_eq!(counts(&app).await, NOTHING);
}

/// The `Cookie` header a browser would send back after `response`.
fn cookie_header(response: &TestResponse) -> String {
    response
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn a_replayed_callback_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let response = app.get(AUTHORIZE).await;
    let cookies = cookie_header(&response);
    let provider_url: Url = location(&response).parse().unwrap();
    let callback = approve(&fake, &provider_url);
    let send = async |cookies: &str| {
        let request = Request::get(callback.as_str())
            .header(header::COOKIE, cookies)
            .body(Body::empty())
            .unwrap();
        app.request(request).await
    };
    location(&send(&cookies).await);
    let after_first = counts(&app).await;
    assert_eq!(after_first.users, 1);

    // The same answer again, with the cookie as it was before the first use.
    let log = LogCapture::start();
    let response = send(&cookies).await;
    assert_page(&response, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
    drop(log);
    assert_eq!(counts(&app).await, after_first);
    assert_eq!(fake.log().token.len(), 1, "the code was not sent again");

    // The back button: the browser itself replays the provider's redirect.
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);
    location(&browser.get(&callback).await);
    let log = LogCapture::start();
    let response = browser.get(&callback).await;
    assert_page(&response, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
    assert_eq!(fake.log().token.len(), 2);
}

async fn an_id_token_that_does_not_verify_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    type Knob = fn(&mut Knobs);
    let knobs: [(&str, Knob); 5] = [
        ("wrong nonce", |k| k.wrong_nonce = true),
        ("another key", |k| k.other_key = true),
        ("wrong issuer", |k| k.wrong_issuer = true),
        ("wrong audience", |k| k.wrong_audience = true),
        ("expired", |k| k.expired = true),
    ];
    for (name, knob) in knobs {
        fake.set(|k| *k = Knobs::default());
        fake.set(knob);
        let log = LogCapture::start();
        let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["could not verify the answer from Fake IdP"],
        );
        log.assert_refusal("id_token_invalid");
        assert_eq!(counts(&app).await, NOTHING, "{name}");
    }
}

async fn a_refused_code_shows_the_error_code(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set(|k| k.token_error = Some("invalid_grant".to_owned()));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::BAD_REQUEST, &["invalid_grant"]);
    log.assert_refusal("token_error");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_missing_required_claim_is_named(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_user(json!({ "sub": "alice", "name": "Alice", "email": "a@example.org", "email_verified": true }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["did not send your username"],
    );
    log.assert_refusal("missing_claim");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn an_invalid_username_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_user(json!({ "sub": "alice", "preferred_username": "alice smith!" }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["cannot be used as a Matrix username"],
    );
    log.assert_refusal("invalid_localpart");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_username_too_long_for_a_matrix_id_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let username = "a".repeat(250);
    fake.set_user(json!({ "sub": "alice", "preferred_username": username }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["cannot be used as a Matrix username"],
    );
    log.assert_refusal("invalid_localpart");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_taken_username_is_a_conflict_page(db: Database) {
    let (fake, app) = setup(db).await;
    app.user_with_password("alice", "correct horse").await;
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::CONFLICT,
        &[
            "\"alice\"",
            "already belongs to an account",
            "administrator of this server can link",
        ],
    );
    log.assert_refusal("localpart_conflict");
    assert!(
        log.text().contains(&format!(
            "mas-cli manage link-upstream alice --provider {PROVIDER_ID} --subject"
        )),
        "the line says how to link: {}",
        log.text()
    );
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            ..NOTHING
        }
    );

    // A name the homeserver knows (an appservice's, an older account) is taken too.
    app.homeserver.reserve_localpart("bob");
    fake.set_user(json!({ "sub": "bob", "preferred_username": "bob" }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::CONFLICT, &["\"bob\""]);
    log.assert_refusal("localpart_conflict");
    assert!(user_named(&app, "bob").await.is_none());
    assert_eq!(counts(&app).await.links, 0);
}

async fn the_conflict_log_line_quotes_the_subject_for_the_shell(db: Database) {
    let (fake, app) = setup(db).await;
    app.user_with_password("alice", "correct horse").await;
    fake.set_user(json!({ "sub": "x$(id)'`id`", "preferred_username": "alice" }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    log.assert_refusal("localpart_conflict");
    assert!(
        log.text().contains(r"--subject 'x$(id)'\''`id`'"),
        "{}",
        log.text()
    );
}

async fn a_locked_or_deactivated_linked_user_cannot_log_in(db: Database) {
    let (fake, app) = setup(db).await;
    login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    let alice = user_named(&app, "alice").await.unwrap();
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::FORBIDDEN, &["locked"]);
    log.assert_refusal("user_locked");
    drop(log);

    users::unlock_user(&mut conn, alice.id).await.unwrap();
    users::deactivate_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    drop(conn);
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::FORBIDDEN, &["deactivated"]);
    log.assert_refusal("user_deactivated");
    assert_eq!(
        counts(&app).await.browser_sessions,
        1,
        "only the first login's"
    );
}

// --- on_conflict ---

fn on_conflict(value: &'static str) -> impl FnOnce(&mut Value) {
    move |provider| provider["claims_imports"]["localpart"]["on_conflict"] = json!(value)
}

async fn link_for(app: &TestApp, user: &crate::model::User, subject: &str) {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    upstream_links::add_upstream_link(
        &mut conn,
        &app.clock,
        &mut rng,
        upstream_links::NewUpstreamLink {
            provider_id: PROVIDER_ID,
            subject,
            user_id: Some(user.id),
            human_account_name: None,
        },
    )
    .await
    .unwrap();
}

async fn links_of(app: &TestApp, user: &crate::model::User) -> Vec<String> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    upstream_links::list_user_upstream_links(&mut conn, user.id, PROVIDER_ID)
        .await
        .unwrap()
        .into_iter()
        .map(|link| link.subject)
        .collect()
}

async fn on_conflict_add_links_the_existing_user(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("add")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let mut browser = app.browser();
    let response = login_through(&fake, &mut browser, AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    let mut links = links_of(&app, &alice).await;
    links.sort();
    assert_eq!(links, ["alice", "earlier-subject"]);
    let counts = counts(&app).await;
    assert_eq!((counts.users, counts.jobs, counts.emails), (1, 0, 0));
    assert!(
        browser
            .get("/auth/")
            .await
            .text()
            .contains("@alice:example.com")
    );
}

async fn on_conflict_set_links_only_a_user_without_a_link(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("set")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::CONFLICT, &["\"alice\""]);
    log.assert_refusal("localpart_conflict");
    drop(log);
    assert_eq!(links_of(&app, &alice).await, ["earlier-subject"]);

    let bob = app.user_with_password("bob", "correct horse").await;
    fake.set_user(json!({ "sub": "bob-sub", "preferred_username": "bob" }));
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    assert_eq!(links_of(&app, &bob).await, ["bob-sub"]);
}

async fn on_conflict_replace_detaches_the_users_other_link(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("replace")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    assert_eq!(links_of(&app, &alice).await, ["alice"]);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let old =
        upstream_links::find_upstream_link_by_subject(&mut conn, PROVIDER_ID, "earlier-subject")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(old.user_id, None, "detached");
}

// --- the confirmation page ---

fn with_confirmation(localpart: &'static str) -> impl FnOnce(&mut Value) {
    move |provider| {
        let imports = &mut provider["claims_imports"];
        imports["skip_confirmation"] = json!(false);
        imports["localpart"]["action"] = json!(localpart);
        imports["displayname"]["action"] = json!("suggest");
        imports["email"]["action"] = json!("suggest");
    }
}

/// Logs in until the confirmation page; returns its path.
async fn until_confirmation(fake: &FakeProvider, browser: &mut Browser) -> String {
    let response = login_through(fake, browser, AUTHORIZE).await;
    let page = location(&response);
    assert!(page.starts_with("/auth/upstream/link/"), "{page}");
    page
}

async fn the_confirmation_page_creates_the_account_the_person_chose(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("suggest")).await;
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    assert_eq!(
        counts(&app).await,
        Counts {
            links: 1,
            ..NOTHING
        },
        "only the unbound link"
    );
    let page = browser.get(&page_path).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    for needle in [
        "Fake IdP",
        r#"name="username""#,
        r#"value="alice""#,
        r#"name="import_display_name""#,
        "Alice Liddell",
        r#"name="import_email""#,
        "alice@example.org",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    let csrf = csrf_of(&html);

    // Without the CSRF token, nothing happens.
    browser
        .post(&page_path, &[("username", "bob")])
        .await
        .assert_status(StatusCode::FORBIDDEN);

    let response = browser
        .post(
            &page_path,
            &[
                ("csrf", &csrf),
                ("username", "Bob"),
                ("import_display_name", "on"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/auth/");
    let bob = user_named(&app, "bob")
        .await
        .expect("the chosen name, lower-cased");
    assert!(user_named(&app, "alice").await.is_none());
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            emails: 0,
            jobs: 1,
            browser_sessions: 1,
        },
        "no email: the box was not ticked"
    );
    assert_eq!(links_of(&app, &bob).await, ["alice"]);
    assert_eq!(jobs(&app).await[0].1["set_display_name"], "Alice Liddell");
    assert!(
        browser
            .get("/auth/")
            .await
            .text()
            .contains("@bob:example.com")
    );

    // Used once.
    let log = LogCapture::start();
    let again = browser.get(&page_path).await;
    assert_page(&again, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
}

async fn the_confirmation_page_refuses_bad_or_taken_names_and_other_browsers(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("suggest")).await;
    app.user_with_password("taken", "correct horse").await;
    app.homeserver.reserve_localpart("bridge");
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    let csrf = csrf_of(&browser.get(&page_path).await.text());
    for (name, message) in [
        ("taken", "This username is taken."),
        ("bridge", "This username is taken."),
        ("not valid!", "Use only lower-case letters"),
        ("", "Choose a username."),
    ] {
        let response = browser
            .post(&page_path, &[("csrf", &csrf), ("username", name)])
            .await;
        assert_page(&response, StatusCode::BAD_REQUEST, &[message]);
    }
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            ..NOTHING
        }
    );

    let log = LogCapture::start();
    let response = app.browser().get(&page_path).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["not started in this browser"],
    );
    log.assert_refusal("state_mismatch");
    drop(log);
    app.browser()
        .get("/auth/upstream/link/01J0000000000000000000SEC0")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // A later login of the same subject reuses the waiting link.
    let mut other = app.browser();
    let second = until_confirmation(&fake, &mut other).await;
    assert_eq!(second, page_path);
    assert_eq!(counts(&app).await.links, 1);
}

async fn a_fixed_username_is_shown_and_created_on_confirmation(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("require")).await;
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    let html = browser.get(&page_path).await.text();
    assert!(html.contains("@alice:example.com"), "{html}");
    assert!(!html.contains(r#"name="username""#), "not editable: {html}");
    let csrf = csrf_of(&html);
    let response = browser
        .post(
            &page_path,
            &[
                ("csrf", csrf.as_str()),
                ("username", "mallory"),
                ("import_email", "on"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/auth/");
    let alice = user_named(&app, "alice")
        .await
        .expect("the provider's name");
    assert!(user_named(&app, "mallory").await.is_none());
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let emails = crate::storage::emails::list_emails(&mut conn, alice.id)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(
        jobs(&app).await,
        vec![(
            "provision-user".to_owned(),
            json!({ "user_id": alice.id.to_string() })
        )],
        "display name not ticked"
    );
}

// --- the login page ---

async fn the_login_page_shows_a_button_per_provider_next_to_the_form(db: Database) {
    let (_fake, app) = setup(db).await;
    let response = app
        .get("/auth/login?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
        .await;
    response.assert_status(StatusCode::OK);
    let html = response.text().replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(html.contains(r#"name="password""#), "{html}");
    assert!(html.contains("Continue with Fake IdP"), "{html}");
    assert!(
        html.contains(&format!(
            r#"href="{AUTHORIZE}?kind=continue_authorization_grant&id=01J0000000000000000000GRNT""#
        )),
        "{html}"
    );
}

async fn sso_only_login_goes_straight_to_the_provider(db: Database) {
    let (fake, app) = setup(db).await;
    let app = without_passwords(app);
    let response = app
        .get("/auth/login?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
        .await;
    response.assert_status(StatusCode::FOUND);
    assert_eq!(
        response.header("location"),
        Some(
            format!("{AUTHORIZE}?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
                .as_str()
        )
    );
    let response = app.get("/auth/login").await;
    response.assert_status(StatusCode::FOUND);
    assert_eq!(response.header("location"), Some(AUTHORIZE));

    // The whole way from the login page.
    let mut browser = app.browser();
    let response = browser.get("/auth/login").await;
    let authorize = response.header("location").unwrap().to_owned();
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(location(&response), "/auth/");
}

async fn sso_only_with_two_providers_shows_both_buttons(db: Database) {
    let fake = FakeProvider::start().await;
    let mut second = fake.provider_config();
    second.id = "01J0000000000000000000SEC0".to_owned();
    second.human_name = Some("Second IdP".to_owned());
    let config = UpstreamOAuth2Config {
        providers: vec![fake.provider_config(), second],
    };
    let app = TestApp::with_upstream(db, fake.clock.clone(), &config).await;
    let app = without_passwords(app);
    let response = app.get("/auth/login").await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(html.contains("Continue with Fake IdP"), "{html}");
    assert!(html.contains("Continue with Second IdP"), "{html}");
    assert!(!html.contains(r#"name="password""#), "{html}");
}

// --- the compat layer in SSO-only mode ---

async fn compat_in_sso_only_mode_logs_in_through_the_provider(db: Database) {
    let (fake, app) = setup(db).await;
    let app = without_passwords(app);
    let flows = app.get("/auth/_matrix/client/v3/login").await;
    flows.assert_status(StatusCode::OK);
    let types: Vec<String> = flows.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["m.login.sso", "m.login.token"]);

    let refused = app
        .post_json(
            "/auth/_matrix/client/v3/login",
            &json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": "x",
            }),
        )
        .await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["errcode"], "M_UNKNOWN");
    assert_eq!(refused.json()["error"], "password login is disabled");

    // m.login.sso without an idp: continue page → login page → provider → back → continue.
    let mut browser = app.browser();
    let response = browser
        .get("/auth/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb")
        .await;
    let complete = local_path(&location(&response));
    let login = location(&browser.get(&complete).await);
    let response = browser.get(&login).await;
    response.assert_status(StatusCode::FOUND);
    let authorize = response.header("location").unwrap().to_owned();
    assert!(
        authorize.contains("kind=continue_compat_sso_login"),
        "{authorize}"
    );
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(location(&response), complete);
    let page = browser.get(&complete).await;
    let csrf = csrf_of(&page.text());
    let response = browser.post(&complete, &[("csrf", &csrf)]).await;
    let back: Url = location(&response).parse().unwrap();
    assert_eq!(back.host_str(), Some("client.example.com"));
    let token = back
        .query_pairs()
        .find(|(k, _)| k == "loginToken")
        .unwrap()
        .1
        .into_owned();
    let login = app
        .post_json(
            "/auth/_matrix/client/v3/login",
            &json!({ "type": "m.login.token", "token": token }),
        )
        .await;
    login.assert_status(StatusCode::OK);
    assert_eq!(login.json()["user_id"], "@alice:example.com");
    assert!(
        app.homeserver
            .calls()
            .iter()
            .any(|call| matches!(call, MockCall::UpsertDevice(user, _, _) if user == "alice")),
        "device created"
    );
}

sqlite_tests!(
    first_login_creates_the_account_and_a_browser_session,
    a_later_login_maps_to_the_same_user,
    the_post_auth_action_continues_after_the_login,
    an_unknown_idp_in_the_legacy_redirect_is_ignored,
    form_post_answers_are_completed_after_one_resubmission,
    two_tabs_completing_at_once_create_one_account,
    an_unknown_provider_is_a_404_page,
    a_provider_that_is_down_is_a_502_page,
    a_cancelled_login_says_so,
    another_provider_error_shows_its_code,
    a_provider_error_without_this_browsers_state_is_a_state_mismatch,
    a_state_not_started_in_this_browser_is_refused,
    a_replayed_callback_is_refused,
    an_id_token_that_does_not_verify_is_refused,
    a_refused_code_shows_the_error_code,
    a_missing_required_claim_is_named,
    an_invalid_username_is_refused,
    a_username_too_long_for_a_matrix_id_is_refused,
    the_conflict_log_line_quotes_the_subject_for_the_shell,
    a_taken_username_is_a_conflict_page,
    a_locked_or_deactivated_linked_user_cannot_log_in,
    on_conflict_add_links_the_existing_user,
    on_conflict_set_links_only_a_user_without_a_link,
    on_conflict_replace_detaches_the_users_other_link,
    the_confirmation_page_creates_the_account_the_person_chose,
    the_confirmation_page_refuses_bad_or_taken_names_and_other_browsers,
    a_fixed_username_is_shown_and_created_on_confirmation,
    the_login_page_shows_a_button_per_provider_next_to_the_form,
    sso_only_login_goes_straight_to_the_provider,
    sso_only_with_two_providers_shows_both_buttons,
    compat_in_sso_only_mode_logs_in_through_the_provider,
);

// --- abuse limits ---

async fn upstream_logins_are_rate_limited_per_address(db: Database) {
    let (_fake, app) = setup(db).await;
    // Sixty from one IPv6 /64, each address different.
    for n in 1..=60 {
        let mut browser = app
            .browser()
            .with_peer(&format!("[2001:db8:5:6::{n:x}]:4000"));
        start(&mut browser, AUTHORIZE).await;
    }
    let mut browser = app.browser().with_peer("[2001:db8:5:6:ffff::1]:4000");
    let response = browser.get(AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::TOO_MANY_REQUESTS,
        &["Too many sign-in attempts", "Wait 2 seconds"],
    );
    assert_eq!(response.header("retry-after"), Some("2"));
    assert!(!browser.has_cookie("upstream-oauth2-sessions"));
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM upstream_oauth_authorization_sessions")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    drop(conn);
    assert_eq!(sessions, 60, "the refused request stored nothing");
    // Another /64 is another client; one interval later the first gets one more.
    let mut other = app.browser().with_peer("[2001:db8:5:7::1]:4000");
    start(&mut other, AUTHORIZE).await;
    app.clock.advance(std::time::Duration::from_secs(2));
    start(&mut browser, AUTHORIZE).await;
}

crate::storage::testing::test_on_both_backends!(upstream_logins_are_rate_limited_per_address);
