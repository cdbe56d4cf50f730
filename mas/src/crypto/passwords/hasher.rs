//! One password hashing scheme, synchronous and CPU-bound: call it only from a blocking thread (the
//! [`super::PasswordManager`] does). Input preparation follows upstream MAS
//! (docs/protocol.md#passwords): NFKC first when asked, then the pepper (Argon2's secret input, or
//! appended to the bytes for bcrypt and PBKDF2), then bcrypt's 72-byte truncation.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use pbkdf2::Pbkdf2;
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

use super::PasswordError;
use crate::config::HashingAlgorithm;

/// Argon2id memory cost in KiB. With [`ARGON2_ITERATIONS`] and one lane this costs about
/// 25–30 ms per hash on the 2-core reference machine (`cargo bench -p mas --bench passwords`);
/// it is the `argon2` crate's default and OWASP's first recommended configuration.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes over memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (one thread per hash; concurrency comes from parallel logins).
pub const ARGON2_LANES: u32 = 1;

/// bcrypt's cost when the scheme gives none (Synapse's default `bcrypt_rounds`).
pub const DEFAULT_BCRYPT_COST: u32 = 12;

/// bcrypt reads at most this many bytes of its input; Synapse truncates explicitly.
const BCRYPT_MAX_BYTES: usize = 72;

/// A configured scheme: algorithm, its parameters, pepper and normalisation.
#[derive(Clone)]
pub struct Hasher {
    algorithm: HashingAlgorithm,
    bcrypt_cost: u32,
    pepper: Option<Zeroizing<Vec<u8>>>,
    unicode_normalization: bool,
}

impl std::fmt::Debug for Hasher {
    /// Never prints the pepper.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("peppered", &self.pepper.is_some())
            .field("unicode_normalization", &self.unicode_normalization)
            .finish()
    }
}

impl Hasher {
    /// A scheme. `bcrypt_cost` is used by bcrypt only (`None`: 12).
    pub fn new(
        algorithm: HashingAlgorithm,
        bcrypt_cost: Option<u32>,
        pepper: Option<&str>,
        unicode_normalization: bool,
    ) -> Result<Self, PasswordError> {
        let hasher = Self {
            algorithm,
            bcrypt_cost: bcrypt_cost.unwrap_or(DEFAULT_BCRYPT_COST),
            pepper: pepper.map(|pepper| Zeroizing::new(pepper.as_bytes().to_vec())),
            unicode_normalization,
        };
        if algorithm == HashingAlgorithm::Argon2id {
            hasher.argon2()?;
        }
        if algorithm == HashingAlgorithm::Bcrypt && !(4..=31).contains(&hasher.bcrypt_cost) {
            return Err(PasswordError::Hashing(format!(
                "bcrypt cost {} is outside 4..=31",
                hasher.bcrypt_cost
            )));
        }
        Ok(hasher)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashingAlgorithm {
        self.algorithm
    }

    /// Hashes `password` with a 16-byte `salt` (from the caller's RNG).
    pub fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, PasswordError> {
        let input = self.prepare(password);
        match self.algorithm {
            HashingAlgorithm::Argon2id => {
                let salt = SaltString::encode_b64(&salt).map_err(hashing)?;
                let hash = self.argon2()?.hash_password(&input, &salt);
                Ok(hash.map_err(hashing)?.to_string())
            }
            HashingAlgorithm::Bcrypt => {
                let parts = bcrypt::hash_with_salt(&input, self.bcrypt_cost, salt);
                Ok(parts
                    .map_err(hashing)?
                    .format_for_version(bcrypt::Version::TwoB))
            }
            HashingAlgorithm::Pbkdf2 => {
                let salt = SaltString::encode_b64(&salt).map_err(hashing)?;
                let hash = Pbkdf2.hash_password(&input, &salt);
                Ok(hash.map_err(hashing)?.to_string())
            }
        }
    }

    /// Checks `password` against `hash` (made by this scheme). `Ok(false)` on mismatch; an
    /// error when the stored hash is unreadable.
    pub fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let input = self.prepare(password);
        match self.algorithm {
            HashingAlgorithm::Argon2id | HashingAlgorithm::Pbkdf2 => {
                let parsed = PasswordHash::new(hash)
                    .ok()
                    .filter(|parsed| parsed.hash.is_some() && parsed.salt.is_some())
                    .ok_or(PasswordError::MalformedHash)?;
                let result = if self.algorithm == HashingAlgorithm::Argon2id {
                    self.argon2()?.verify_password(&input, &parsed)
                } else {
                    Pbkdf2.verify_password(&input, &parsed)
                };
                match result {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::Password) => Ok(false),
                    Err(_) => Err(PasswordError::MalformedHash),
                }
            }
            HashingAlgorithm::Bcrypt => {
                bcrypt::verify(&input, hash).map_err(|_| PasswordError::MalformedHash)
            }
        }
    }

    /// The bytes actually hashed: NFKC if configured, the pepper appended (bcrypt, PBKDF2),
    /// and for bcrypt the first 72 bytes only, as Synapse does before calling bcrypt.
    fn prepare(&self, password: &str) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(if self.unicode_normalization {
            password.nfkc().collect::<String>().into_bytes()
        } else {
            password.as_bytes().to_vec()
        });
        if self.algorithm != HashingAlgorithm::Argon2id
            && let Some(pepper) = &self.pepper
        {
            bytes.extend_from_slice(pepper);
        }
        if self.algorithm == HashingAlgorithm::Bcrypt {
            bytes.truncate(BCRYPT_MAX_BYTES);
        }
        bytes
    }

    fn argon2(&self) -> Result<Argon2<'_>, PasswordError> {
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
            .map_err(hashing)?;
        match &self.pepper {
            Some(pepper) => {
                Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, params)
                    .map_err(hashing)
            }
            None => Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
        }
    }
}

fn hashing(error: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hashing(error.to_string())
}

#[cfg(test)]
mod tests;
