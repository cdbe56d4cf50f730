//! The 1 MiB limit on every answer from a provider.

use super::*;

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
