//! The authorization URL and PKCE.

use super::*;

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
    let code = approved_code(&provider, &fake).await;
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
