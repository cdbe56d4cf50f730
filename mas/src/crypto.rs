//! Cryptographic building blocks of MAS: signing keys, the JWKS and ID-token signing, bearer
//! token formats, other random values, password hashing, and symmetric encryption for cookies
//! and database secrets. Everything that needs randomness takes the RNG as an argument, and
//! nothing here touches the database or HTTP.

pub mod encrypter;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod keystore;
pub mod passwords;
pub mod random;
pub mod tokens;

use subtle::ConstantTimeEq as _;

pub use self::encrypter::{DecryptError, Encrypter};
pub use self::jwk::{Jwk, Jwks};
pub use self::jwt::{JwsAlgorithm, JwtError};
pub use self::keys::{KeyError, SigningKey};
pub use self::keystore::{IdTokenClaims, Keystore, oidc_hash};
pub use self::passwords::{PasswordError, PasswordManager, Verified};
pub use self::tokens::{TokenKind, sha256_hex};

/// Compares two secrets in constant time (for a given length): CSRF tokens, the
/// homeserver's shared secret at introspection. Different lengths compare unequal at once,
/// which only reveals the length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }
}
