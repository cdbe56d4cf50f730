//! Cryptographic material MAS holds: signing keys (and, later, the encrypter and password
//! hashing). Everything that needs randomness takes the RNG as an argument.

pub mod keys;

pub use self::keys::{KeyError, SigningKey};
