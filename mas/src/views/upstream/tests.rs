//! Router tests of the upstream login on SQLite, against the in-process
//! [`FakeProvider`]: the whole flow (authorize, callback by query and `form_post`, first and
//! later logins, post-auth actions, the confirmation page, `on_conflict`), every refusal page
//! with its log line and nothing created, the login page's buttons and SSO-only redirect, and
//! the compat layer in SSO-only mode. One module per topic; this one holds what they share.

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

mod compat;
mod confirmation;
mod flow;
mod limits;
mod login_page;
mod on_conflict;
mod refusals;

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

/// A whole login in a fresh browser that must end on a refusal page with `status` and
/// `words`, and exactly one refusal log line with `reason`; the captured log, for more checks.
async fn assert_login_refused(
    fake: &FakeProvider,
    app: &TestApp,
    status: StatusCode,
    words: &[&str],
    reason: &str,
) -> LogCapture {
    let log = LogCapture::start();
    let response = login_through(fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, status, words);
    log.assert_refusal(reason);
    log
}

/// The `state` parameter of the provider URL a login was redirected to.
fn state_of(provider_url: &Url) -> String {
    provider_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

/// How many upstream authorization sessions are stored.
async fn authorization_sessions(app: &TestApp) -> i64 {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM upstream_oauth_authorization_sessions")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    sessions
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

async fn links_of(app: &TestApp, user: &crate::model::User) -> Vec<String> {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    upstream_links::list_user_upstream_links(&mut conn, user.id, PROVIDER_ID)
        .await
        .unwrap()
        .into_iter()
        .map(|link| link.subject)
        .collect()
}
