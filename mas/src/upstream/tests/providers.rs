//! Building providers from the configuration, and the stable refusal reasons.

use super::*;

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
