//! The loaded signing keys as one runtime object: the public JWKS served at `oauth2/keys.json`, the
//! algorithms discovery advertises, and ID-token signing (RS256 unless the client registered
//! another algorithm; docs/protocol.md#token-endpoint).

use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::SigningKey;
use super::jwk::{Jwk, Jwks, b64};
use super::jwt::{self, JwsAlgorithm, JwtError};
use crate::config::{KeyLoadError, LoadedKey, SecretsConfig};

/// How long an ID token is valid, in seconds (docs/protocol.md#lifetimes).
pub const ID_TOKEN_TTL_SECS: i64 = 3600;

/// The claims of an ID token (OpenID Connect Core §2, §3.1.3.6). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer (`http.issuer`).
    pub iss: String,
    /// The user's ULID.
    pub sub: String,
    /// The client ID.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry, normally `iat` + [`ID_TOKEN_TTL_SECS`].
    pub exp: i64,
    /// The `nonce` of the authorization request, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the user last authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// [`oidc_hash`] of the access token issued alongside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// [`oidc_hash`] of the authorization code issued alongside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
}

/// `at_hash`/`c_hash` of `value` for a token signed with `alg`: the left half of its hash
/// (SHA-256 for both RS256 and ES256), base64url without padding.
pub fn oidc_hash(alg: JwsAlgorithm, value: &str) -> String {
    match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Es256 => {
            let digest = Sha256::digest(value.as_bytes());
            b64(&digest[..digest.len() / 2])
        }
    }
}

/// One key with its `kid`.
#[derive(Debug)]
struct Entry {
    kid: String,
    key: SigningKey,
    jwk: Jwk,
}

/// The signing keys; cheap to clone.
#[derive(Debug, Clone)]
pub struct Keystore {
    entries: Arc<[Entry]>,
}

impl Keystore {
    /// The keystore of `keys`, in configuration order. A key's `kid` is its configured one,
    /// or else its RFC 7638 thumbprint, which stays the same across restarts.
    pub fn new(keys: impl IntoIterator<Item = LoadedKey>) -> Self {
        let entries = keys
            .into_iter()
            .map(|loaded| {
                let mut jwk = Jwk::public(&loaded.key);
                let kid = loaded.kid.or_else(|| jwk.thumbprint()).unwrap_or_default();
                jwk.kid = Some(kid.clone());
                Entry {
                    kid,
                    key: loaded.key,
                    jwk,
                }
            })
            .collect();
        Self { entries }
    }

    /// Loads every key of `secrets.keys`.
    pub fn from_config(secrets: &SecretsConfig) -> Result<Self, KeyLoadError> {
        Ok(Self::new(secrets.load_keys()?))
    }

    /// The public JWKS (`{"keys": [...]}`).
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.entries.iter().map(|entry| entry.jwk.clone()).collect(),
        }
    }

    /// The algorithms we can sign with, RS256 first (discovery's
    /// `id_token_signing_alg_values_supported`).
    pub fn algorithms(&self) -> Vec<JwsAlgorithm> {
        [JwsAlgorithm::Rs256, JwsAlgorithm::Es256]
            .into_iter()
            .filter(|alg| {
                self.entries
                    .iter()
                    .any(|entry| JwsAlgorithm::of(&entry.key) == *alg)
            })
            .collect()
    }

    /// Signs `claims` as a JWT with the first key of algorithm `alg`.
    pub fn sign(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        alg: JwsAlgorithm,
        claims: &impl Serialize,
    ) -> Result<String, JwtError> {
        let entry = self
            .entries
            .iter()
            .find(|entry| JwsAlgorithm::of(&entry.key) == alg)
            .ok_or(JwtError::NoKey(alg))?;
        jwt::sign(rng, &entry.key, &entry.kid, claims)
    }

    /// Signs an ID token; `alg` is the client's `id_token_signed_response_alg` or RS256.
    pub fn sign_id_token(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        alg: JwsAlgorithm,
        claims: &IdTokenClaims,
    ) -> Result<String, JwtError> {
        self.sign(rng, alg, claims)
    }
}

#[cfg(test)]
mod tests;
