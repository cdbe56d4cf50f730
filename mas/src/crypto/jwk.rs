//! JSON Web Keys (RFC 7517) for the public halves of our signing keys, their RFC 7638
//! thumbprints (our stable `kid`s), and the reverse conversion into verifying keys for
//! checking signatures. Only RSA and EC P-256 keys are understood.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::SigningKey;

/// A public JSON Web Key. Unknown members of foreign keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// Intended use; ours are `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The algorithm the key is used with (`RS256`, `ES256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve (`P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JWK Set: `{"keys": [...]}`, as served at `oauth2/keys.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A public key that can check signatures.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    Rsa(RsaPublicKey),
    EcP256(p256::PublicKey),
}

impl Jwk {
    /// The public half of `key`, with `use: sig`, its algorithm and no `kid` yet.
    pub fn public(key: &SigningKey) -> Self {
        let base = Self {
            kty: String::new(),
            use_: Some("sig".to_owned()),
            alg: Some(key.algorithm().to_owned()),
            kid: None,
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match key {
            SigningKey::Rsa(key) => Self {
                kty: "RSA".to_owned(),
                n: Some(b64(&key.n().to_bytes_be())),
                e: Some(b64(&key.e().to_bytes_be())),
                ..base
            },
            SigningKey::EcP256(key) => {
                let point = key.public_key().to_encoded_point(false);
                Self {
                    kty: "EC".to_owned(),
                    crv: Some("P-256".to_owned()),
                    x: point.x().map(|x| b64(x)),
                    y: point.y().map(|y| b64(y)),
                    ..base
                }
            }
        }
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url) of the required members, or `None` for a
    /// key type we do not know or a key missing members.
    pub fn thumbprint(&self) -> Option<String> {
        // Required members in lexicographic order, no whitespace (RFC 7638 §3.2). The
        // values are base64url or fixed names, so they need no JSON escaping.
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                self.e.as_deref()?,
                self.n.as_deref()?
            ),
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.as_deref()?,
                self.x.as_deref()?,
                self.y.as_deref()?
            ),
            _ => return None,
        };
        Some(b64(&Sha256::digest(canonical.as_bytes())))
    }

    /// The key as a verifying key, or `None` when it is not a usable RSA or P-256 key.
    pub(crate) fn public_key(&self) -> Option<PublicKey> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => {
                let n = BigUint::from_bytes_be(&unb64(self.n.as_deref()?)?);
                let e = BigUint::from_bytes_be(&unb64(self.e.as_deref()?)?);
                RsaPublicKey::new(n, e).ok().map(PublicKey::Rsa)
            }
            ("EC", Some("P-256")) => {
                let x = unb64(self.x.as_deref()?)?;
                let y = unb64(self.y.as_deref()?)?;
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                Option::from(p256::PublicKey::from_encoded_point(&point)).map(PublicKey::EcP256)
            }
            _ => None,
        }
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint().as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert!(matches!(jwk.public_key(), Some(PublicKey::Rsa(_))));
    }

    #[test]
    fn public_jwks_carry_no_private_members() {
        let mut rng = StdRng::seed_from_u64(5);
        for key in [
            SigningKey::generate_rsa(&mut rng).unwrap(),
            SigningKey::generate_ec_p256(&mut rng),
        ] {
            let json = serde_json::to_value(Jwk::public(&key)).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(json.get(private).is_none(), "{json}");
            }
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], key.algorithm());
        }
    }

    #[test]
    fn ec_keys_round_trip_to_public_keys() {
        let key = SigningKey::generate_ec_p256(&mut StdRng::seed_from_u64(6));
        let jwk = Jwk::public(&key);
        assert_eq!(jwk.kty, "EC");
        assert_eq!(jwk.x.as_deref().map(str::len), Some(43));
        let Some(PublicKey::EcP256(public)) = jwk.public_key() else {
            panic!("not an EC key: {jwk:?}");
        };
        let SigningKey::EcP256(secret) = key else {
            unreachable!()
        };
        assert_eq!(public, secret.public_key());
    }

    #[test]
    fn unusable_jwks_have_no_public_key_or_thumbprint() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"
        }))
        .unwrap();
        assert!(jwk.public_key().is_none());
        let oct: Jwk =
            serde_json::from_value(serde_json::json!({"kty": "oct", "k": "AA"})).unwrap();
        assert!(oct.thumbprint().is_none());
        assert!(oct.public_key().is_none());
    }
}
