//! [`TestApp`]: the real router over the real [`AppState`], with a fresh migrated database,
//! a [`MockClock`], a seeded RNG, fixed signing keys, the repository's templates and a
//! [`MockHomeserver`] that records calls. Endpoint tests drive it through `oneshot`.

pub(crate) mod browser;
pub(crate) mod oauth;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};

use super::{AppState, SiteConfig, build_router};
use crate::clock::MockClock;
use crate::config::{
    AccountConfig, BindConfig, EncryptionKey, ListenerConfig, LoadedKey, Resource,
};
use crate::config::{HashingAlgorithm, UpstreamOAuth2Config};
use crate::crypto::encrypter::Encrypter;
use crate::crypto::keys::SigningKey;
use crate::crypto::keystore::Keystore;
use crate::crypto::passwords::Hasher;
use crate::crypto::passwords::PasswordManager;
use crate::extract::cookies::CookieManager;
use crate::homeserver::MockHomeserver;
use crate::rng::RngSource;
use crate::routes::UrlBuilder;
use crate::storage::Database;
use crate::templates::Templates;

/// The public base every test app uses.
pub(crate) const PUBLIC_BASE: &str = "http://localhost:8000/auth/";
/// The Matrix server name of the test homeserver.
pub(crate) const SERVER_NAME: &str = "example.com";
/// The sender of the test app's mail.
pub(crate) const MAIL_FROM: &str = "Matrix <noreply@example.com>";
/// The shared secret Synapse presents to introspect.
pub(crate) const MATRIX_SECRET: &str = "test-shared-secret-1234";

const RSA_PEM: &str = include_str!("testdata/rsa.pem");
const EC_PEM: &str = include_str!("testdata/ec.pem");

/// A running test application.
pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) router: Router,
    pub(crate) clock: MockClock,
    pub(crate) homeserver: Arc<MockHomeserver>,
    /// What the app mailed (a memory transport).
    pub(crate) outbox: crate::email::Outbox,
}

/// The appliance's listener: prefix `/auth`, every resource.
pub(crate) fn appliance_listener() -> ListenerConfig {
    ListenerConfig {
        name: Some("web".to_owned()),
        resources: vec![
            Resource::Discovery {},
            Resource::Human {},
            Resource::OAuth {},
            Resource::Compat {},
            Resource::Health {},
        ],
        prefix: Some("/auth".to_owned()),
        binds: vec![BindConfig::address("127.0.0.1:8080")],
    }
}

impl TestApp {
    /// A test app over `db` (migrated here).
    pub(crate) async fn new(db: Database) -> Self {
        Self::with_upstream(db, MockClock::default(), &UpstreamOAuth2Config::default()).await
    }

    /// A test app over `db` with the upstream providers of `upstream` on `clock` (share it
    /// with a `crate::upstream::testing::FakeProvider`).
    pub(crate) async fn with_upstream(
        db: Database,
        clock: MockClock,
        upstream: &UpstreamOAuth2Config,
    ) -> Self {
        crate::storage::migrate(&db).await.unwrap();
        let homeserver = Arc::new(MockHomeserver::new(SERVER_NAME));
        let key = EncryptionKey([7; 32]);
        let public_base: url::Url = PUBLIC_BASE.parse().unwrap();
        let keys = [RSA_PEM, EC_PEM].map(|pem| LoadedKey {
            kid: None,
            key: SigningKey::from_pem(pem).unwrap(),
        });
        let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
        let templates_dir =
            camino::Utf8PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/mas"));
        let (mailer, outbox) = crate::email::Mailer::memory(MAIL_FROM).unwrap();
        let state = AppState {
            db,
            clock: Arc::new(clock.clone()),
            urls: UrlBuilder::new(public_base.clone()),
            rng: RngSource::seeded(42),
            keystore: Arc::new(Keystore::new(keys)),
            cookies: CookieManager::new(&key, &public_base),
            encrypter: Encrypter::derive(&key, "secrets-at-rest"),
            passwords: Some(Arc::new(PasswordManager::new([(1, argon2)], 0).unwrap())),
            templates: Templates::load(&templates_dir).unwrap(),
            homeserver: homeserver.clone(),
            jobs: crate::jobs::JobWaker::new(),
            limiter: crate::ratelimit::RateLimiter::default(),
            site: Arc::new(SiteConfig {
                server_name: SERVER_NAME.to_owned(),
                issuer: PUBLIC_BASE.to_owned(),
                matrix_secret: MATRIX_SECRET.to_owned(),
                access_token_ttl: Duration::from_secs(300),
                compat_token_ttl: Duration::from_secs(300),
                account: AccountConfig::default(),
                trusted_proxies: crate::extract::client_ip::TrustedProxies::from_config(&[
                    "127.0.0.0/8".to_owned(),
                ]),
                tos_uri: None,
            }),
            upstream: crate::upstream::UpstreamProviders::from_config(
                upstream,
                Arc::new(clock.clone()),
            )
            .unwrap(),
            mailer: Arc::new(mailer),
        };
        let router = build_router(state.clone(), &appliance_listener());
        Self {
            state,
            router,
            clock,
            homeserver,
            outbox,
        }
    }

    /// The same app with `account` as the `account` configuration section.
    pub(crate) fn with_account(mut self, account: AccountConfig) -> Self {
        let mut site = SiteConfig::clone(&self.state.site);
        site.account = account;
        self.state.site = Arc::new(site);
        self.router = build_router(self.state.clone(), &appliance_listener());
        self
    }

    /// Sends `request` through the router.
    pub(crate) async fn request(&self, request: Request<Body>) -> TestResponse {
        Self::send_to(&self.router, request).await
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> TestResponse {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// `POST path` with a form body.
    pub(crate) async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        self.request(form_request(Method::POST, path, form)).await
    }

    /// Runs every due job of the queue (mail, provisioning) as the server's worker would;
    /// returns how many ran.
    pub(crate) async fn run_jobs(&self) -> usize {
        let ctx = crate::jobs::JobContext::from(&self.state);
        crate::jobs::worker::run_due_jobs(&ctx, &tokio_util::sync::CancellationToken::new())
            .await
            .unwrap()
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post_json(&self, path: &str, json: &serde_json::Value) -> TestResponse {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .unwrap();
        self.request(request).await
    }
}

/// A form request, to add headers to before sending.
pub(crate) fn form_request(method: Method, path: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

/// Adds `Authorization: Bearer <token>` to a request.
pub(crate) fn bearer(mut request: Request<Body>, token: &str) -> Request<Body> {
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

/// A collected response.
#[derive(Debug)]
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl TestResponse {
    /// Fails with the body when the status is not `expected`.
    #[track_caller]
    pub(crate) fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(self.status, expected, "body: {}", self.text());
        self
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
