//! Every ID-token rule.

use super::*;

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    assert_id_token_refused(|knobs| knobs.wrong_nonce = true, "Nonce").await;
}

#[tokio::test]
async fn a_missing_nonce_is_refused() {
    assert_id_token_refused(
        |knobs| {
            knobs.id_token_patch.insert("nonce".to_owned(), json!(null));
        },
        "Nonce",
    )
    .await;
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
    assert_id_token_refused(|knobs| knobs.wrong_audience = true, "Audience").await;
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
    assert_id_token_refused(|knobs| knobs.other_key = true, "Signature").await;
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let code = approved_code(&provider, &fake).await;
    let endpoints = provider.endpoints().await.unwrap();
    let tokens = provider
        .exchange_code(&endpoints, &callback_with(&code))
        .await
        .unwrap();
    let expected = crate::upstream::id_token::Expected {
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
    assert_id_token_refused(|knobs| knobs.bad_at_hash = true, "AccessTokenHash").await;
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
    let code = approved_code(&provider, &fake).await;
    let c_hash = crate::crypto::oidc_hash(crate::crypto::JwsAlgorithm::Rs256, &code);
    fake.set(|knobs| {
        knobs
            .id_token_patch
            .insert("c_hash".to_owned(), json!(c_hash));
    });
    provider.complete(callback_with(&code)).await.unwrap();
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
    let expected = crate::upstream::id_token::Expected {
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
