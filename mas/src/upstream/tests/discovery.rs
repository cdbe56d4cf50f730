//! Discovery: its rules, the fallback to explicit endpoints, caching.

use super::*;

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
    let code = approved_code(&provider, &fake).await;
    fake.set_down(true);
    let error = provider.complete(callback_with(&code)).await.unwrap_err();
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
