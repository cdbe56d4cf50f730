//! Token-signing keys: RSA (RS256, mandatory in OpenID Connect) and EC P-256 (ES256), read
//! from PEM (PKCS#8, PKCS#1 or SEC1) and generated for `config generate`. JWK export and
//! signing come with the OAuth endpoints.

use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand::{CryptoRng, RngCore};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A private signing key.
#[derive(Clone)]
pub enum SigningKey {
    /// An RSA key (RS256).
    Rsa(Box<RsaPrivateKey>),
    /// An EC key on P-256 (ES256).
    EcP256(p256::SecretKey),
}

/// Why a key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a key we can read.
    #[error(
        "not a PEM-encoded RSA or EC P-256 private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not supported)"
    )]
    Unsupported,
    /// An RSA key that is too small.
    #[error("RSA key has {0} bits; at least 2048 are required")]
    RsaTooSmall(usize),
    /// Generation or encoding failed.
    #[error("cannot generate or encode the key: {0}")]
    Encode(String),
}

impl std::fmt::Debug for SigningKey {
    /// Names the key type only: the key itself never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.algorithm())
    }
}

impl SigningKey {
    /// Reads a private key from PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.trim();
        let rsa = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .ok();
        if let Some(key) = rsa {
            let bits = key.size() * 8;
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooSmall(bits));
            }
            return Ok(Self::Rsa(Box::new(key)));
        }
        p256::SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
            .map(Self::EcP256)
            .map_err(|_| KeyError::Unsupported)
    }

    /// A new 2048-bit RSA key.
    pub fn generate_rsa(rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, KeyError> {
        RsaPrivateKey::new(rng, MIN_RSA_BITS)
            .map(|key| Self::Rsa(Box::new(key)))
            .map_err(|error| KeyError::Encode(error.to_string()))
    }

    /// A new EC P-256 key.
    pub fn generate_ec_p256(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::EcP256(p256::SecretKey::random(rng))
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            Self::Rsa(key) => key.to_pkcs8_pem(LineEnding::LF),
            Self::EcP256(key) => key.to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|pem| pem.to_string())
            .map_err(|error| KeyError::Encode(error.to_string()))
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "RS256",
            Self::EcP256(_) => "ES256",
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pkcs8_pem() {
        let mut rng = StdRng::seed_from_u64(42);
        for key in [
            SigningKey::generate_rsa(&mut rng).unwrap(),
            SigningKey::generate_ec_p256(&mut rng),
        ] {
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let read = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(read.algorithm(), key.algorithm());
        }
    }

    #[test]
    fn garbage_is_unsupported() {
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(KeyError::Unsupported)
        ));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = SigningKey::generate_ec_p256(&mut StdRng::seed_from_u64(1));
        assert_eq!(format!("{key:?}"), "SigningKey(ES256)");
    }
}
