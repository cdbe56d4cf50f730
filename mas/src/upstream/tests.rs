//! Provider tests against the in-process [`FakeProvider`]: discovery rules, the authorization
//! URL, the code exchange, every ID-token rule, userinfo, caching and fallback. One module per
//! topic; this one holds what they share.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::testing::{CLIENT_ID, CLIENT_SECRET, FakeProvider, Knobs, PROVIDER_ID};
use super::*;
use crate::config::upstream::{DiscoveryMode, PkceMethod, ResponseMode, TokenAuthMethod};

mod authorization;
mod discovery;
mod exchange;
mod id_token_rules;
mod providers;
mod size_limit;

const REDIRECT_URI: &str =
    "http://localhost:8000/auth/upstream/callback/01J00000000000000000PR0V1D";
const STATE: &str = "state-123";
const NONCE: &str = "nonce-456";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abcdef";

fn params() -> AuthorizationParams<'static> {
    AuthorizationParams {
        redirect_uri: REDIRECT_URI,
        state: STATE,
        nonce: NONCE,
        code_verifier: VERIFIER,
        login_hint: Some("alice"),
    }
}

/// The fake's provider, with `change` applied to its configuration.
fn provider(fake: &FakeProvider, change: impl FnOnce(&mut ProviderConfig)) -> Arc<Provider> {
    let mut config = fake.provider_config();
    change(&mut config);
    let providers = fake.providers_for(&UpstreamOAuth2Config {
        providers: vec![config],
    });
    providers.get(PROVIDER_ID).unwrap().clone()
}

/// Configures every endpoint of the fake explicitly.
fn set_explicit_endpoints(config: &mut ProviderConfig, fake: &FakeProvider) {
    config.authorization_endpoint = Some(fake.url("/authorize"));
    config.token_endpoint = Some(fake.url("/token"));
    config.jwks_uri = Some(fake.url("/jwks"));
    config.userinfo_endpoint = Some(fake.url("/userinfo"));
}

/// Makes the fake's discovery document name another issuer (a strict discovery failure).
fn discovery_names_another_issuer(fake: &FakeProvider) {
    fake.set(|knobs| {
        knobs
            .discovery_patch
            .insert("issuer".to_owned(), json!("https://evil.example.com"));
    });
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A whole login: authorization URL, approval at the fake, callback completion.
async fn login(
    provider: &Provider,
    fake: &FakeProvider,
) -> Result<UpstreamIdentity, UpstreamError> {
    let request = provider.authorization_url(params()).await?;
    let callback = fake.approve(&request.url);
    let code = query(&callback, "code").expect("the fake approved");
    assert_eq!(query(&callback, "state").as_deref(), Some(STATE));
    provider
        .complete(CallbackParams {
            redirect_uri: REDIRECT_URI,
            code: &code,
            code_verifier: request.pkce.then_some(VERIFIER),
            nonce: NONCE,
        })
        .await
}

/// Authorization URL and approval at the fake, without completing: the callback's `code`.
async fn approved_code(provider: &Provider, fake: &FakeProvider) -> String {
    let request = provider.authorization_url(params()).await.unwrap();
    query(&fake.approve(&request.url), "code").unwrap()
}

/// The callback of a PKCE login with `code`.
fn callback_with(code: &str) -> CallbackParams<'_> {
    CallbackParams {
        redirect_uri: REDIRECT_URI,
        code,
        code_verifier: Some(VERIFIER),
        nonce: NONCE,
    }
}

/// A fake changed by `change` and the default provider: one login must fail on the ID token
/// with `expected` (see [`assert_id_token_error`]).
async fn assert_id_token_refused(change: impl FnOnce(&mut Knobs), expected: &str) {
    let fake = FakeProvider::start().await;
    fake.set(change);
    assert_id_token_error(login(&provider(&fake, |_| {}), &fake).await, expected);
}

#[track_caller]
fn assert_id_token_error(result: Result<UpstreamIdentity, UpstreamError>, expected: &str) {
    match result {
        Err(error @ UpstreamError::IdToken(_)) => {
            assert_eq!(error.reason(), "id_token_invalid");
            let UpstreamError::IdToken(inner) = &error else {
                unreachable!()
            };
            assert_eq!(format!("{inner:?}"), expected, "{error}");
        }
        other => panic!("expected an ID token error {expected}, got {other:?}"),
    }
}

/// Collects formatted log lines while alive (this thread only).
struct Logs {
    buffer: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    fn capture() -> Self {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        Self {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
