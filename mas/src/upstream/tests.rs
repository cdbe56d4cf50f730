//! Provider tests against the in-process [`FakeProvider`]: discovery rules, the authorization
//! URL, the code exchange, every ID-token rule, userinfo, caching and fallback.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::testing::{CLIENT_ID, CLIENT_SECRET, FakeProvider, PROVIDER_ID};
use super::*;
use crate::config::upstream::{DiscoveryMode, PkceMethod, ResponseMode, TokenAuthMethod};

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

// --- providers -------------------------------------------------------------------------

#[tokio::test]
async fn providers_are_built_without_contacting_anyone() {
    let fake = FakeProvider::start().await;
    let mut disabled = fake.provider_config();
    disabled.id = "01J00000000000000000D1SABL".to_owned();
    disabled.enabled = false;
    let mut second = fake.provider_config();
    second.id = "01J000000000000000000SEC0N".to_owned();
    second.human_name = None;
    let mut config = fake.upstream_config();
    config.providers.extend([disabled, second]);
    let providers = fake.providers_for(&config);
    let ids: Vec<_> = providers.enabled().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [PROVIDER_ID, "01J000000000000000000SEC0N"]);
    assert!(providers.get("01J00000000000000000D1SABL").is_none());
    assert_eq!(
        providers.get(PROVIDER_ID).unwrap().display_name(),
        "Fake IdP"
    );
    assert_eq!(
        providers
            .get("01J000000000000000000SEC0N")
            .unwrap()
            .display_name(),
        "127.0.0.1"
    );
    assert_eq!(fake.log().discovery, 0);
    assert!(UpstreamProviders::empty().is_empty());
    assert!(UpstreamProviders::empty().enabled().is_empty());
}

#[test]
fn an_unusable_provider_fails_at_start_naming_it() {
    let mut config: ProviderConfig = serde_json::from_value(json!({
        "id": PROVIDER_ID,
        "issuer": "https://idp.example.com",
        "client_id": CLIENT_ID,
        "client_secret_file": "/nonexistent/secret",
    }))
    .unwrap();
    let build = |config: &ProviderConfig| {
        UpstreamProviders::from_config(
            &UpstreamOAuth2Config {
                providers: vec![config.clone()],
            },
            Arc::new(crate::clock::MockClock::default()),
        )
    };
    let error = build(&config).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("upstream_oauth2.providers[0]: client_secret: cannot read"),
        "{error}"
    );
    // A disabled provider is not built at all.
    config.enabled = false;
    assert!(build(&config).unwrap().is_empty());
}

#[test]
fn reasons_are_stable() {
    let unreachable = UpstreamError::Unreachable {
        endpoint: "token",
        message: String::new(),
    };
    let token = UpstreamError::TokenEndpoint {
        error: "invalid_grant".to_owned(),
        description: None,
    };
    assert_eq!(unreachable.reason(), "provider_unreachable");
    assert_eq!(
        UpstreamError::from(DiscoveryError::NoCodeResponseType).reason(),
        "discovery_invalid"
    );
    assert_eq!(token.reason(), "token_error");
    assert_eq!(
        UpstreamError::from(IdTokenError::Nonce).reason(),
        "id_token_invalid"
    );
    assert_eq!(
        UpstreamError::from(UserinfoError::SubjectMismatch).reason(),
        "userinfo_failed"
    );
}

// --- authorization URL and PKCE --------------------------------------------------------

#[tokio::test]
async fn authorization_url_carries_state_nonce_and_s256_when_advertised() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let request = provider.authorization_url(params()).await.unwrap();
    assert!(request.pkce);
    let url = &request.url;
    assert_eq!(
        url.as_str().split('?').next(),
        Some(fake.url("/authorize").as_str())
    );
    assert_eq!(query(url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query(url, "redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(query(url, "scope").as_deref(), Some("openid profile email"));
    assert_eq!(query(url, "state").as_deref(), Some(STATE));
    assert_eq!(query(url, "nonce").as_deref(), Some(NONCE));
    assert_eq!(query(url, "code_challenge"), Some(code_challenge(VERIFIER)));
    assert_eq!(query(url, "code_challenge_method").as_deref(), Some("S256"));
    // Not forwarded without forward_login_hint; no response_mode unless configured.
    assert_eq!(query(url, "login_hint"), None);
    assert_eq!(query(url, "response_mode"), None);
}

#[test]
fn code_challenge_is_rfc_7636_s256() {
    // RFC 7636 appendix B.
    assert_eq!(
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[tokio::test]
async fn pkce_auto_is_off_when_the_provider_does_not_list_s256() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.no_pkce = true);
    let provider = provider(&fake, |_| {});
    let request = provider.authorization_url(params()).await.unwrap();
    assert!(!request.pkce);
    assert_eq!(query(&request.url, "code_challenge"), None);
    // The whole login works without a verifier.
    login(&provider, &fake).await.unwrap();
    assert!(!fake.log().token[0].form.contains_key("code_verifier"));
}

#[tokio::test]
async fn pkce_always_and_never_ignore_discovery() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.no_pkce = true);
    let always = provider(&fake, |config| config.pkce_method = PkceMethod::Always);
    let request = always.authorization_url(params()).await.unwrap();
    assert!(request.pkce);
    assert_eq!(
        query(&request.url, "code_challenge_method").as_deref(),
        Some("S256")
    );

    fake.set(|knobs| knobs.no_pkce = false);
    let never = provider(&fake, |config| config.pkce_method = PkceMethod::Never);
    let request = never.authorization_url(params()).await.unwrap();
    assert!(!request.pkce);
    assert_eq!(query(&request.url, "code_challenge"), None);
}

#[tokio::test]
async fn the_verifier_is_sent_and_checked_at_the_token_endpoint() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    login(&provider, &fake).await.unwrap();
    assert_eq!(
        fake.log().token[0]
            .form
            .get("code_verifier")
            .map(String::as_str),
        Some(VERIFIER)
    );
    // A wrong verifier is refused by the provider.
    let request = provider.authorization_url(params()).await.unwrap();
    let code = query(&fake.approve(&request.url), "code").unwrap();
    let error = provider
        .complete(CallbackParams {
            redirect_uri: REDIRECT_URI,
            code: &code,
            code_verifier: Some("another-verifier-0123456789-0123456789-012345"),
            nonce: NONCE,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UpstreamError::TokenEndpoint { error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
}

#[tokio::test]
async fn response_mode_login_hint_and_extra_parameters_when_configured() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.response_mode = Some(ResponseMode::FormPost);
        config.forward_login_hint = true;
        config
            .additional_authorization_parameters
            .insert("prompt".to_owned(), "login".to_owned());
        config
            .additional_authorization_parameters
            .insert("dropped".to_owned(), "{{ params.nothing }}".to_owned());
    });
    assert_eq!(provider.response_mode(), Some(ResponseMode::FormPost));
    let url = provider.authorization_url(params()).await.unwrap().url;
    assert_eq!(query(&url, "response_mode").as_deref(), Some("form_post"));
    assert_eq!(query(&url, "login_hint").as_deref(), Some("alice"));
    assert_eq!(query(&url, "prompt").as_deref(), Some("login"));
    assert_eq!(query(&url, "dropped"), None);
}

// --- discovery -------------------------------------------------------------------------

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let fake = FakeProvider::start().await;
    discovery_names_another_issuer(&fake);
    let provider = provider(&fake, |_| {});
    let error = provider.authorization_url(params()).await.unwrap_err();
    assert_eq!(error.reason(), "discovery_invalid");
    assert!(
        matches!(
            error,
            UpstreamError::Discovery(DiscoveryError::IssuerMismatch { .. })
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn discovery_tolerates_one_trailing_slash_in_the_issuer() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.issuer = Some(format!("{}/", fake.issuer));
    });
    login(&provider, &fake).await.unwrap();
}

#[tokio::test]
async fn http_endpoints_on_other_hosts_are_refused_unless_insecure() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs.discovery_patch.insert(
            "token_endpoint".to_owned(),
            json!("http://idp.example.com/token"),
        );
    });
    let strict = provider(&fake, |_| {});
    let error = strict.authorization_url(params()).await.unwrap_err();
    assert!(
        matches!(
            &error,
            UpstreamError::Discovery(DiscoveryError::Insecure {
                field: "token_endpoint",
                ..
            })
        ),
        "{error:?}"
    );
    // Loopback http (the fake itself) is fine in strict mode; insecure mode skips the check.
    let insecure = provider(&fake, |config| {
        config.discovery_mode = DiscoveryMode::Insecure
    });
    insecure.authorization_url(params()).await.unwrap();
}

#[tokio::test]
async fn discovery_without_the_code_flow_or_an_endpoint_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs
            .discovery_patch
            .insert("response_types_supported".to_owned(), json!(["id_token"]));
    });
    let error = provider(&fake, |_| {})
        .authorization_url(params())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        UpstreamError::Discovery(DiscoveryError::NoCodeResponseType)
    ));

    fake.set(|knobs| {
        knobs.discovery_patch.clear();
        knobs
            .discovery_patch
            .insert("jwks_uri".to_owned(), json!(null));
    });
    let error = provider(&fake, |_| {})
        .authorization_url(params())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            UpstreamError::Discovery(DiscoveryError::MissingEndpoint("jwks_uri"))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_reported_as_such() {
    let fake = FakeProvider::start().await;
    fake.set_down(true);
    let provider = provider(&fake, |_| {});
    let error = provider.authorization_url(params()).await.unwrap_err();
    assert_eq!(error.reason(), "provider_unreachable", "{error:?}");
    // Back up: the next attempt discovers (failures are not cached).
    fake.set_down(false);
    login(&provider, &fake).await.unwrap();
}

#[tokio::test]
async fn a_provider_going_down_at_the_token_exchange_is_unreachable() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let request = provider.authorization_url(params()).await.unwrap();
    let code = query(&fake.approve(&request.url), "code").unwrap();
    fake.set_down(true);
    let error = provider
        .complete(CallbackParams {
            redirect_uri: REDIRECT_URI,
            code: &code,
            code_verifier: Some(VERIFIER),
            nonce: NONCE,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            UpstreamError::Unreachable {
                endpoint: "token",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn explicit_endpoints_are_used_when_discovery_fails() {
    let fake = FakeProvider::start().await;
    discovery_names_another_issuer(&fake);
    let provider = provider(&fake, |config| {
        set_explicit_endpoints(config, &fake);
    });
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.sub(), "alice");
    // Without discovery, PKCE auto is off.
    assert!(!fake.log().token[0].form.contains_key("code_verifier"));
    // The fallback is cached: the next login does not retry discovery at once.
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().discovery, 1);
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

#[tokio::test]
async fn the_fallback_is_logged_once_without_secrets() {
    let logs = Logs::capture();
    let fake = FakeProvider::start().await;
    discovery_names_another_issuer(&fake);
    let provider = provider(&fake, |config| {
        set_explicit_endpoints(config, &fake);
    });
    let identity = login(&provider, &fake).await.unwrap();
    // The fallback is retried after five minutes; still failing, it is not logged again.
    fake.clock.advance(Duration::from_secs(301));
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().discovery, 2);
    let text = logs.text();
    assert_eq!(
        text.matches("discovery failed; using the configured endpoints")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("reason=\"discovery_invalid\""), "{text}");
    assert!(text.contains(&format!("provider={PROVIDER_ID}")), "{text}");
    for secret in [CLIENT_SECRET, &identity.id_token, VERIFIER] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn a_missing_discovery_document_is_invalid_discovery() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.issuer = Some(format!("{}/nowhere", fake.issuer));
    });
    let error = provider.authorization_url(params()).await.unwrap_err();
    assert!(
        matches!(
            error,
            UpstreamError::Discovery(DiscoveryError::Status {
                what: "discovery",
                status: 404
            })
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn without_a_complete_set_of_explicit_endpoints_a_discovery_failure_stands() {
    let fake = FakeProvider::start().await;
    fake.set_down(true);
    let provider = provider(&fake, |config| {
        config.authorization_endpoint = Some(fake.url("/authorize"));
        config.token_endpoint = Some(fake.url("/token"));
        // No jwks_uri.
    });
    let error = provider.authorization_url(params()).await.unwrap_err();
    assert_eq!(error.reason(), "provider_unreachable");
}

#[tokio::test]
async fn explicit_endpoints_override_discovered_ones() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.authorization_endpoint = Some("https://login.example.com/custom".parse().unwrap());
    });
    let request = provider.authorization_url(params()).await.unwrap();
    assert!(
        request
            .url
            .as_str()
            .starts_with("https://login.example.com/custom?"),
        "{}",
        request.url
    );
    // The rest still comes from discovery (PKCE advertised there).
    assert!(request.pkce);
}

#[tokio::test]
async fn disabled_discovery_uses_only_the_explicit_endpoints() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.discovery_mode = DiscoveryMode::Disabled;
        set_explicit_endpoints(config, &fake);
    });
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().discovery, 0);
}

#[tokio::test]
async fn metadata_is_cached_for_an_hour() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    provider.authorization_url(params()).await.unwrap();
    provider.authorization_url(params()).await.unwrap();
    assert_eq!(fake.log().discovery, 1);
    fake.clock.advance(Duration::from_secs(3601));
    provider.authorization_url(params()).await.unwrap();
    assert_eq!(fake.log().discovery, 2);
}

// --- code exchange ---------------------------------------------------------------------

#[tokio::test]
async fn a_login_returns_the_id_token_and_userinfo_claims() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs
            .userinfo_patch
            .insert("name".to_owned(), json!("Alice from userinfo"));
    });
    let provider = provider(&fake, |_| {});
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.sub(), "alice");
    assert_eq!(identity.id_token_claims["name"], "Alice Liddell");
    let userinfo = identity.userinfo.as_ref().unwrap();
    assert_eq!(userinfo["name"], "Alice from userinfo");
    assert_eq!(identity.merged()["name"], "Alice from userinfo");
    assert_eq!(identity.merged()["iss"], json!(fake.issuer));
    assert_eq!(fake.log().userinfo, 1);
    assert!(!format!("{identity:?}").contains(&identity.id_token));
}

#[tokio::test]
async fn each_login_reports_the_person_who_logged_in() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    assert_eq!(login(&provider, &fake).await.unwrap().sub(), "alice");
    fake.set_user(json!({"sub": "bob", "preferred_username": "bob"}));
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.sub(), "bob");
    assert_eq!(identity.merged()["preferred_username"], "bob");
}

#[tokio::test]
async fn client_secret_basic_sends_credentials_in_the_header() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    login(&provider, &fake).await.unwrap();
    let request = &fake.log().token[0];
    // The secret has a space and a colon: form-urlencoded before Basic, decoded back.
    assert_eq!(
        request.basic,
        Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()))
    );
    assert!(!request.form.contains_key("client_secret"));
    assert_eq!(request.form["grant_type"], "authorization_code");
    assert_eq!(request.form["redirect_uri"], REDIRECT_URI);
}

#[tokio::test]
async fn client_secret_post_sends_credentials_in_the_form() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.token_endpoint_auth_method = TokenAuthMethod::ClientSecretPost;
    });
    login(&provider, &fake).await.unwrap();
    let request = &fake.log().token[0];
    assert_eq!(request.basic, None);
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert_eq!(request.form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn auth_method_none_sends_only_the_client_id() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.token_endpoint_auth_method = TokenAuthMethod::None;
        config.client_secret = None;
    });
    // The fake wants a secret: its refusal comes back as a token error.
    let error = login(&provider, &fake).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::TokenEndpoint { error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    let request = &fake.log().token[0];
    assert_eq!(request.basic, None);
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert!(!request.form.contains_key("client_secret"));
}

#[tokio::test]
async fn token_endpoint_errors_carry_the_oauth_error() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.token_error = Some("invalid_grant".to_owned()));
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    assert_eq!(error.reason(), "token_error");
    let UpstreamError::TokenEndpoint { error, description } = error else {
        panic!("{error:?}")
    };
    assert_eq!(error, "invalid_grant");
    assert_eq!(description.as_deref(), Some("refused by the fake provider"));
}

#[tokio::test]
async fn token_endpoint_error_text_is_one_short_line() {
    let fake = FakeProvider::start().await;
    let code = format!("invalid_grant\nFORGED LOG LINE{}", "x".repeat(100));
    fake.set(|knobs| knobs.token_error = Some(code));
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    let text = error.to_string();
    assert!(!text.contains('\n'), "{text}");
    let UpstreamError::TokenEndpoint { error, .. } = error else {
        panic!("{error:?}")
    };
    assert!(
        error.starts_with("invalid_grantFORGED") && error.len() == 64,
        "{error}"
    );
}

#[tokio::test]
async fn a_code_is_exchanged_once() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let request = provider.authorization_url(params()).await.unwrap();
    let code = query(&fake.approve(&request.url), "code").unwrap();
    let callback = CallbackParams {
        redirect_uri: REDIRECT_URI,
        code: &code,
        code_verifier: Some(VERIFIER),
        nonce: NONCE,
    };
    provider.complete(callback).await.unwrap();
    let error = provider.complete(callback).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::TokenEndpoint { error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
}

// --- ID token --------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.wrong_nonce = true);
    assert_id_token_error(login(&provider(&fake, |_| {}), &fake).await, "Nonce");
}

#[tokio::test]
async fn a_missing_nonce_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs.id_token_patch.insert("nonce".to_owned(), json!(null));
    });
    assert_id_token_error(login(&provider(&fake, |_| {}), &fake).await, "Nonce");
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.wrong_issuer = true);
    let result = login(&provider(&fake, |_| {}), &fake).await;
    let Err(UpstreamError::IdToken(IdTokenError::Issuer { found, .. })) = result else {
        panic!("{result:?}")
    };
    assert_eq!(found, "https://evil.example.com");
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.wrong_audience = true);
    assert_id_token_error(login(&provider(&fake, |_| {}), &fake).await, "Audience");
}

#[tokio::test]
async fn several_audiences_need_azp_to_be_us() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    fake.set(|knobs| knobs.extra_audience = Some("another-client".to_owned()));
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.id_token_claims["azp"], CLIENT_ID);

    fake.set(|knobs| knobs.wrong_azp = true);
    assert_id_token_error(login(&provider, &fake).await, "AuthorizedParty");

    fake.set(|knobs| {
        knobs.wrong_azp = false;
        knobs.id_token_patch.insert("azp".to_owned(), json!(null));
    });
    assert_id_token_error(login(&provider, &fake).await, "AuthorizedParty");
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_leeway() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    fake.set(|knobs| knobs.expired = true);
    assert_id_token_error(login(&provider, &fake).await, "Expired");

    // Expired 10 s ago: within the 30 s leeway.
    let now = fake.clock.now_unix_ms() / 1000;
    fake.set(|knobs| {
        knobs.expired = false;
        knobs
            .id_token_patch
            .insert("exp".to_owned(), json!(now - 10));
    });
    login(&provider, &fake).await.unwrap();

    fake.set(|knobs| {
        knobs.id_token_patch.insert("exp".to_owned(), json!(null));
    });
    assert_id_token_error(login(&provider, &fake).await, "Expired");
}

#[tokio::test]
async fn iat_must_be_present_and_nbf_reached() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    fake.set(|knobs| {
        knobs.id_token_patch.insert("iat".to_owned(), json!(null));
    });
    assert_id_token_error(login(&provider, &fake).await, "MissingIssuedAt");

    let now = fake.clock.now_unix_ms() / 1000;
    fake.set(|knobs| {
        knobs.id_token_patch.clear();
        knobs
            .id_token_patch
            .insert("nbf".to_owned(), json!(now + 120));
    });
    assert_id_token_error(login(&provider, &fake).await, "NotYetValid");
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.other_key = true);
    assert_id_token_error(login(&provider(&fake, |_| {}), &fake).await, "Signature");
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let request = provider.authorization_url(params()).await.unwrap();
    let code = query(&fake.approve(&request.url), "code").unwrap();
    let endpoints = provider.endpoints().await.unwrap();
    let tokens = provider
        .exchange_code(
            &endpoints,
            &CallbackParams {
                redirect_uri: REDIRECT_URI,
                code: &code,
                code_verifier: Some(VERIFIER),
                nonce: NONCE,
            },
        )
        .await
        .unwrap();
    let expected = id_token::Expected {
        access_token: &tokens.access_token,
        code: &code,
        nonce: NONCE,
    };
    provider
        .validate_id_token(&endpoints, &tokens.id_token, &expected)
        .await
        .unwrap();
    let mut parts: Vec<String> = tokens.id_token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&crate::crypto::jwk::unb64(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    parts[1] = b64(&serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");
    let error = provider
        .validate_id_token(&endpoints, &tampered, &expected)
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::IdToken(IdTokenError::Signature)),
        "{error:?}"
    );
    let error = provider
        .validate_id_token(&endpoints, "not.a-jwt", &expected)
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::IdToken(IdTokenError::Malformed)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_bad_at_hash_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.bad_at_hash = true);
    assert_id_token_error(
        login(&provider(&fake, |_| {}), &fake).await,
        "AccessTokenHash",
    );
}

#[tokio::test]
async fn c_hash_is_checked_when_present() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    fake.set(|knobs| {
        knobs
            .id_token_patch
            .insert("c_hash".to_owned(), json!("AAAAAAAAAAAAAAAAAAAAAA"));
    });
    assert_id_token_error(login(&provider, &fake).await, "CodeHash");
    // The right hash of the code (the fake signs at the token request, after `set`).
    let request = provider.authorization_url(params()).await.unwrap();
    let code = query(&fake.approve(&request.url), "code").unwrap();
    let c_hash = crate::crypto::oidc_hash(crate::crypto::JwsAlgorithm::Rs256, &code);
    fake.set(|knobs| {
        knobs
            .id_token_patch
            .insert("c_hash".to_owned(), json!(c_hash));
    });
    provider
        .complete(CallbackParams {
            redirect_uri: REDIRECT_URI,
            code: &code,
            code_verifier: Some(VERIFIER),
            nonce: NONCE,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn fractional_numeric_dates_are_accepted() {
    let fake = FakeProvider::start().await;
    let now = fake.clock.now_unix_ms() / 1000;
    fake.set(|knobs| {
        knobs
            .id_token_patch
            .insert("iat".to_owned(), json!(now as f64 + 0.5));
        knobs
            .id_token_patch
            .insert("exp".to_owned(), json!(now as f64 + 300.25));
    });
    login(&provider(&fake, |_| {}), &fake).await.unwrap();
}

#[tokio::test]
async fn a_token_without_at_hash_is_accepted() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs
            .id_token_patch
            .insert("at_hash".to_owned(), json!(null));
    });
    login(&provider(&fake, |_| {}), &fake).await.unwrap();
}

#[tokio::test]
async fn only_the_configured_algorithm_is_accepted() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.es256 = true);
    let result = login(&provider(&fake, |_| {}), &fake).await;
    let Err(UpstreamError::IdToken(IdTokenError::Algorithm { expected, found })) = result else {
        panic!("{result:?}")
    };
    assert_eq!((expected, found.as_str()), ("RS256", "ES256"));

    let es256 = provider(&fake, |config| {
        config.id_token_signed_response_alg = "ES256".to_owned();
    });
    login(&es256, &fake).await.unwrap();
}

#[tokio::test]
async fn a_forged_algorithm_name_stays_on_one_log_line() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let endpoints = provider.endpoints().await.unwrap();
    let header = crate::crypto::jwk::b64(br#"{"alg":"none\nFORGED LOG LINE"}"#);
    let expected = super::id_token::Expected {
        access_token: "at",
        code: "code",
        nonce: "nonce",
    };
    let error = provider
        .validate_id_token(&endpoints, &format!("{header}.e30."), &expected)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("signed with") && !text.contains('\n'),
        "{text}"
    );

    // Algorithm confusion: `none` and HS256 (keyed with the public key) are refused first.
    for alg in ["none", "HS256"] {
        let header = crate::crypto::jwk::b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        let result = provider
            .validate_id_token(&endpoints, &format!("{header}.e30.c2ln"), &expected)
            .await;
        assert!(
            matches!(
                result,
                Err(UpstreamError::IdToken(IdTokenError::Algorithm { .. }))
            ),
            "{alg}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    login(&provider, &fake).await.unwrap();
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().jwks, 1, "the JWKS is cached");

    fake.rotate_keys();
    fake.clock.advance(Duration::from_secs(61));
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().jwks, 2, "refetched once for the new kid");
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().jwks, 2);
}

#[tokio::test]
async fn jwks_refetches_are_rate_limited() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    login(&provider, &fake).await.unwrap();
    fake.rotate_keys();
    // Less than a minute after the last fetch: no refetch, the token is refused.
    assert_id_token_error(login(&provider, &fake).await, "UnknownKey");
    assert_id_token_error(login(&provider, &fake).await, "UnknownKey");
    assert_eq!(fake.log().jwks, 1);
    fake.clock.advance(Duration::from_secs(60));
    login(&provider, &fake).await.unwrap();
    assert_eq!(fake.log().jwks, 2);
}

// --- userinfo --------------------------------------------------------------------------

#[tokio::test]
async fn a_userinfo_subject_mismatch_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs.userinfo_patch.insert("sub".to_owned(), json!("bob"));
    });
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    assert_eq!(error.reason(), "userinfo_failed");
    assert!(
        matches!(
            error,
            UpstreamError::Userinfo(UserinfoError::SubjectMismatch)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn userinfo_is_not_fetched_unless_configured() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| config.fetch_userinfo = false);
    let identity = login(&provider, &fake).await.unwrap();
    assert!(identity.userinfo.is_none());
    assert_eq!(fake.log().userinfo, 0);
    assert_eq!(identity.merged(), identity.id_token_claims);
}

// --- size limit ------------------------------------------------------------------------

fn oversize(fake: &FakeProvider, path: &'static str, chunked: bool) {
    fake.set(|knobs| knobs.oversized = Some(testing::Oversized { path, chunked }));
}

#[tokio::test]
async fn a_discovery_document_declared_over_1_mib_is_refused_unread() {
    let fake = FakeProvider::start().await;
    oversize(&fake, "/.well-known/openid-configuration", false);
    let error = provider(&fake, |_| {})
        .authorization_url(params())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "discovery_invalid");
    match &error {
        UpstreamError::Discovery(DiscoveryError::TooLarge { what, message }) => {
            assert_eq!(*what, "discovery");
            assert!(message.starts_with("Content-Length "), "{message}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(error.to_string().contains("1048576-byte limit"), "{error}");
}

#[tokio::test]
async fn a_streamed_jwks_over_1_mib_is_refused() {
    let fake = FakeProvider::start().await;
    oversize(&fake, "/jwks", true);
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    assert_eq!(error.reason(), "discovery_invalid");
    match &error {
        UpstreamError::Discovery(DiscoveryError::TooLarge { what, message }) => {
            assert_eq!(*what, "jwks");
            assert_eq!(message, "body is over the 1048576-byte limit");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn token_answers_over_1_mib_are_a_token_error() {
    for chunked in [false, true] {
        let fake = FakeProvider::start().await;
        oversize(&fake, "/token", chunked);
        let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
        assert_eq!(error.reason(), "token_error");
        match &error {
            UpstreamError::TokenEndpoint { error, description } => {
                assert_eq!(error, "invalid_response");
                let description = description.as_deref().unwrap();
                assert!(description.contains("1048576-byte limit"), "{description}");
            }
            other => panic!("expected a token error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn userinfo_answers_over_1_mib_are_refused() {
    for chunked in [false, true] {
        let fake = FakeProvider::start().await;
        oversize(&fake, "/userinfo", chunked);
        let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
        assert_eq!(error.reason(), "userinfo_failed");
        assert!(
            matches!(&error, UpstreamError::Userinfo(UserinfoError::TooLarge(message))
                if message.contains("1048576-byte limit")),
            "{error:?}"
        );
    }
}
