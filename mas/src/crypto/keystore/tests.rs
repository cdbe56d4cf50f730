use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde_json::json;

use super::*;

fn loaded(key: &SigningKey, kid: Option<&str>) -> LoadedKey {
    LoadedKey {
        kid: kid.map(str::to_owned),
        key: key.clone(),
    }
}

fn keys() -> (SigningKey, SigningKey) {
    let mut rng = StdRng::seed_from_u64(21);
    (
        SigningKey::generate_rsa(&mut rng).unwrap(),
        SigningKey::generate_ec_p256(&mut rng),
    )
}

fn claims() -> IdTokenClaims {
    IdTokenClaims {
        iss: "https://example.com/auth/".to_owned(),
        sub: "01HV0000000000000000000000".to_owned(),
        aud: "01HVCLIENT0000000000000000".to_owned(),
        iat: 1_704_067_200,
        exp: 1_704_067_200 + ID_TOKEN_TTL_SECS,
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        auth_time: Some(1_704_067_100),
        at_hash: Some(oidc_hash(JwsAlgorithm::Rs256, "mat_x")),
        c_hash: None,
    }
}

#[test]
fn oidc_hash_matches_the_openid_connect_core_examples() {
    // OpenID Connect Core 1.0, appendix A.4 (RS256).
    assert_eq!(
        oidc_hash(
            JwsAlgorithm::Rs256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        ),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
    assert_eq!(
        oidc_hash(
            JwsAlgorithm::Rs256,
            "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
        ),
        "LDktKdoQak3Pk0cnXxCltA"
    );
}

#[test]
fn kids_are_thumbprints_unless_configured_and_stable_across_loads() {
    let (rsa, ec) = keys();
    let pem = rsa.to_pkcs8_pem().unwrap();
    let first = Keystore::new([loaded(&rsa, None), loaded(&ec, Some("ec-1"))]);
    let reloaded = SigningKey::from_pem(&pem).unwrap();
    let second = Keystore::new([loaded(&reloaded, None)]);

    let jwks = first.jwks();
    let rsa_jwk = &jwks.keys[0];
    assert_eq!(rsa_jwk.kid, rsa_jwk.thumbprint());
    assert_eq!(rsa_jwk.kid, second.jwks().keys[0].kid);
    assert_eq!(jwks.keys[1].kid.as_deref(), Some("ec-1"));
}

#[test]
fn jwks_lists_public_members_only() {
    let (rsa, ec) = keys();
    let store = Keystore::new([loaded(&rsa, Some("r")), loaded(&ec, Some("e"))]);
    let json = serde_json::to_value(store.jwks()).unwrap();
    let members = |index: usize| {
        let mut names: Vec<String> = json["keys"][index]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    };
    assert_eq!(members(0), ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(members(1), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(json["keys"][0]["e"], json!("AQAB"));
    assert_eq!(json["keys"][1]["crv"], json!("P-256"));
}

#[test]
fn id_tokens_are_signed_rs256_and_verify_with_the_jwks() {
    let (rsa, ec) = keys();
    let store = Keystore::new([loaded(&ec, None), loaded(&rsa, None)]);
    assert_eq!(
        store.algorithms(),
        [JwsAlgorithm::Rs256, JwsAlgorithm::Es256]
    );
    let mut rng = StdRng::seed_from_u64(22);
    for alg in store.algorithms() {
        let token = store.sign_id_token(&mut rng, alg, &claims()).unwrap();
        let decoded: IdTokenClaims = jwt::verify(&store.jwks(), &token).unwrap();
        assert_eq!(decoded, claims());
        let header: serde_json::Value = serde_json::from_slice(
            &super::super::jwk::unb64(token.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], json!(alg.as_str()));
    }
}

#[test]
fn absent_claims_are_omitted() {
    let claims = IdTokenClaims {
        nonce: None,
        auth_time: None,
        at_hash: None,
        c_hash: None,
        ..claims()
    };
    let json = serde_json::to_value(&claims).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 5, "{json}");
}

#[test]
fn signing_with_an_algorithm_without_a_key_fails() {
    let (rsa, _) = keys();
    let store = Keystore::new([loaded(&rsa, None)]);
    assert_eq!(store.algorithms(), [JwsAlgorithm::Rs256]);
    let result = store.sign_id_token(
        &mut StdRng::seed_from_u64(1),
        JwsAlgorithm::Es256,
        &claims(),
    );
    assert!(matches!(result, Err(JwtError::NoKey(JwsAlgorithm::Es256))));
}
