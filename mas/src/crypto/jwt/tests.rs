use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::*;
use crate::crypto::jwk::Jwk;

fn key_set(keys: &[(&SigningKey, &str)]) -> Jwks {
    Jwks {
        keys: keys
            .iter()
            .map(|(key, kid)| Jwk {
                kid: Some((*kid).to_owned()),
                ..Jwk::public(key)
            })
            .collect(),
    }
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&unb64(part).unwrap()).unwrap()
}

#[test]
fn rs256_and_es256_tokens_round_trip() {
    let mut rng = StdRng::seed_from_u64(11);
    let rsa = SigningKey::generate_rsa(&mut rng).unwrap();
    let ec = SigningKey::generate_ec_p256(&mut rng);
    let jwks = key_set(&[(&rsa, "r"), (&ec, "e")]);
    for (key, kid, alg, sig_len) in [(&rsa, "r", "RS256", 256), (&ec, "e", "ES256", 64)] {
        let token = sign(&mut rng, key, kid, &json!({"sub": "alice"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_part(parts[0]),
            json!({"alg": alg, "kid": kid, "typ": "JWT"})
        );
        assert_eq!(unb64(parts[2]).unwrap().len(), sig_len);
        let claims: Value = verify(&jwks, &token).unwrap();
        assert_eq!(claims, json!({"sub": "alice"}));
    }
}

#[test]
fn tampered_tokens_fail() {
    let mut rng = StdRng::seed_from_u64(12);
    let ec = SigningKey::generate_ec_p256(&mut rng);
    let jwks = key_set(&[(&ec, "e")]);
    let token = sign(&mut rng, &ec, "e", &json!({"sub": "alice"})).unwrap();
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = rest.split_once('.').unwrap();
    let forged = format!("{header}.{}.{signature}", b64(br#"{"sub":"mallory"}"#));
    assert!(matches!(
        verify::<Value>(&jwks, &forged),
        Err(JwtError::BadSignature)
    ));
    let other = SigningKey::generate_ec_p256(&mut rng);
    let wrong_key = sign(&mut rng, &other, "e", &json!({})).unwrap();
    assert!(matches!(
        verify::<Value>(&jwks, &wrong_key),
        Err(JwtError::BadSignature)
    ));
}

#[test]
fn unknown_kids_and_algorithm_confusion_find_no_key() {
    let mut rng = StdRng::seed_from_u64(13);
    let ec = SigningKey::generate_ec_p256(&mut rng);
    let jwks = key_set(&[(&ec, "e")]);
    let token = sign(&mut rng, &ec, "other", &json!({})).unwrap();
    assert!(matches!(
        verify::<Value>(&jwks, &token),
        Err(JwtError::UnknownKey)
    ));
    // An RS256 header pointing at the EC key.
    let (_, rest) = token.split_once('.').unwrap();
    let header = b64(br#"{"alg":"RS256","kid":"e"}"#);
    assert!(matches!(
        verify::<Value>(&jwks, &format!("{header}.{rest}")),
        Err(JwtError::UnknownKey)
    ));
}

#[test]
fn tokens_without_kid_are_checked_against_every_key_of_their_algorithm() {
    let mut rng = StdRng::seed_from_u64(14);
    let first = SigningKey::generate_ec_p256(&mut rng);
    let second = SigningKey::generate_ec_p256(&mut rng);
    let jwks = key_set(&[(&first, "1"), (&second, "2")]);
    let token = sign(&mut rng, &second, "2", &json!({"n": 1})).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let header = b64(br#"{"alg":"ES256"}"#);
    // The signature covers the header, so re-sign by hand with the new header.
    let signer = match &second {
        SigningKey::EcP256(key) => p256::ecdsa::SigningKey::from(key),
        SigningKey::Rsa(_) => unreachable!(),
    };
    let payload = rest.split_once('.').unwrap().0;
    let input = format!("{header}.{payload}");
    let signature: p256::ecdsa::Signature = signer.sign(input.as_bytes());
    let token = format!("{input}.{}", b64(&signature.to_bytes()));
    let claims: Value = verify(&jwks, &token).unwrap();
    assert_eq!(claims, json!({"n": 1}));
}

#[test]
fn none_hmac_and_malformed_tokens_are_refused() {
    let jwks = Jwks::default();
    let payload = b64(b"{}");
    for alg in ["none", "HS256", "RS512"] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        let result = verify::<Value>(&jwks, &format!("{header}.{payload}."));
        assert!(
            matches!(result, Err(JwtError::UnsupportedAlgorithm(ref name)) if name == alg),
            "{alg}: {result:?}"
        );
    }
    for token in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
        let result = verify::<Value>(&jwks, token);
        assert!(
            matches!(result, Err(JwtError::Malformed)),
            "{token}: {result:?}"
        );
    }
}

#[test]
fn algorithm_names_parse_and_print() {
    for alg in [JwsAlgorithm::Rs256, JwsAlgorithm::Es256] {
        assert_eq!(alg.as_str().parse::<JwsAlgorithm>().unwrap(), alg);
        assert_eq!(serde_json::to_value(alg).unwrap(), json!(alg.to_string()));
    }
}
