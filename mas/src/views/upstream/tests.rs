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
use crate::app::testing::{PUBLIC_BASE, TestApp, TestResponse, appliance_listener};
use crate::config::UpstreamOAuth2Config;
use crate::homeserver::MockCall;
use crate::storage::Database;
use crate::storage::testing::on_sqlite;
use crate::storage::{upstream_links, users};
use crate::upstream::testing::{FakeProvider, PROVIDER_ID};
use crate::views::testing::{Browser, csrf_of, location};

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
    assert!(
        !browser.has_cookie("upstream-oauth2-sessions"),
        "forgotten once used"
    );

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

sqlite_tests!(
    first_login_creates_the_account_and_a_browser_session,
    a_later_login_maps_to_the_same_user,
);
