//! Compact JWS (RFC 7515) signing and verification with RS256 (RSASSA-PKCS1-v1_5 with
//! SHA-256) and ES256 (ECDSA P-256 with SHA-256), built on the RustCrypto `rsa` and `p256`
//! crates the key loader already uses. Verification checks the signature only; claims
//! (`exp`, `aud`, …) are the caller's business.

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, RngCore};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::SigningKey;
use super::jwk::{Jwks, PublicKey, b64, unb64};

/// A JWS algorithm we sign and verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; mandatory in OpenID Connect and our default.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
}

impl JwsAlgorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The algorithm `key` signs with.
    pub fn of(key: &SigningKey) -> Self {
        match key {
            SigningKey::Rsa(_) => Self::Rs256,
            SigningKey::EcP256(_) => Self::Es256,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlgorithm {
    type Err = JwtError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            other => Err(JwtError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// Why a JWT could not be signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// An algorithm we do not sign or verify with (including `none`).
    #[error("unsupported JWS algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// No configured key signs with this algorithm.
    #[error("no signing key for {0}")]
    NoKey(JwsAlgorithm),
    /// Not three base64url parts with JSON header and payload.
    #[error("malformed JWT")]
    Malformed,
    /// No key in the set matches the header's `kid` and `alg`.
    #[error("no matching key in the JWKS")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid JWT signature")]
    BadSignature,
    /// The claims could not be serialised or decoded.
    #[error("JWT claims: {0}")]
    Claims(#[from] serde_json::Error),
    /// The signing library failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The protected header we write and read.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` as a compact JWS with `key` (whose algorithm is used) and header
/// `{"alg", "kid", "typ": "JWT"}`. RSA signatures are blinded with `rng`; ECDSA nonces are
/// deterministic (RFC 6979).
pub fn sign(
    rng: &mut (impl RngCore + CryptoRng),
    key: &SigningKey,
    kid: &str,
    claims: &impl Serialize,
) -> Result<String, JwtError> {
    let header = Header {
        alg: key.algorithm().to_owned(),
        kid: Some(kid.to_owned()),
        typ: Some("JWT".to_owned()),
    };
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header)?),
        b64(&serde_json::to_vec(claims)?)
    );
    let signature = match key {
        SigningKey::Rsa(key) => {
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.as_ref().clone());
            signer
                .try_sign_with_rng(rng, signing_input.as_bytes())
                .map_err(|error| JwtError::Signing(error.to_string()))?
                .to_vec()
        }
        SigningKey::EcP256(key) => {
            let signer = p256::ecdsa::SigningKey::from(key);
            let signature: p256::ecdsa::Signature = signer.sign(signing_input.as_bytes());
            signature.to_bytes().to_vec()
        }
    };
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

/// Verifies a compact JWS against `jwks` and decodes its payload. The key is the one named
/// by the header's `kid`, or, without a `kid`, any key of the header's algorithm.
pub fn verify<T: DeserializeOwned>(jwks: &Jwks, token: &str) -> Result<T, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = serde_json::from_slice(&unb64(header).ok_or(JwtError::Malformed)?)
        .map_err(|_| JwtError::Malformed)?;
    let alg: JwsAlgorithm = header.alg.parse()?;
    let signature = unb64(signature).ok_or(JwtError::Malformed)?;
    let signing_input = &token[..token.len() - signature_len(token)];

    let candidates = jwks.keys.iter().filter(|jwk| {
        header
            .kid
            .as_ref()
            .is_none_or(|kid| jwk.kid.as_ref() == Some(kid))
            && jwk
                .alg
                .as_deref()
                .is_none_or(|jwk_alg| jwk_alg == alg.as_str())
    });
    let mut matched = false;
    for jwk in candidates {
        let verified = match (alg, jwk.public_key()) {
            (JwsAlgorithm::Rs256, Some(PublicKey::Rsa(key))) => {
                matched = true;
                let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
                rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                    .is_ok_and(|sig| verifier.verify(signing_input.as_bytes(), &sig).is_ok())
            }
            (JwsAlgorithm::Es256, Some(PublicKey::EcP256(key))) => {
                matched = true;
                let verifier = p256::ecdsa::VerifyingKey::from(key);
                p256::ecdsa::Signature::from_slice(&signature)
                    .is_ok_and(|sig| verifier.verify(signing_input.as_bytes(), &sig).is_ok())
            }
            _ => false,
        };
        if verified {
            let payload = unb64(payload).ok_or(JwtError::Malformed)?;
            return Ok(serde_json::from_slice(&payload)?);
        }
    }
    Err(if matched {
        JwtError::BadSignature
    } else {
        JwtError::UnknownKey
    })
}

/// Length of `.<signature>` at the end of `token`.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

#[cfg(test)]
mod tests;
