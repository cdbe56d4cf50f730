//! Password hashing by versioned schemes (docs/protocol.md#passwords). New hashes use the highest
//! configured version; a stored hash is verified with the scheme of its own version and is due for
//! an upgrade when that is not the current one. Hashing is CPU-bound and runs on tokio's blocking
//! pool, never on the async executor, with a cap on how many hashes run at once (each Argon2id hash
//! holds 19 MiB). The zxcvbn complexity check lives here too.
//!
//! A login for a user that does not exist, or has no password, must cost what a wrong
//! password costs, or the answer time tells which usernames exist (upstream MAS answers those
//! at once). [`PasswordManager::verify_dummy`] verifies the submitted password against a
//! fixed hash of the current scheme, made on first use, and throws the result away.
//!
//! Not here: the `user_passwords` rows (storage), rate limits (checked before verifying).

mod hasher;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rand::{CryptoRng, RngCore};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

pub use self::hasher::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, DEFAULT_BCRYPT_COST, Hasher,
};
use crate::config::{PasswordsConfig, SecretError};

/// How many hashes may run at once: more only queue up memory and latency on 2 cores.
const MAX_CONCURRENT_HASHES: usize = 4;

/// The password and salt of the dummy hash. Neither is secret: the hash never stands for an
/// account, and whether the submitted password matches it is ignored.
const DUMMY_PASSWORD: &str = "mas dummy password for unknown users";
const DUMMY_SALT: [u8; 16] = *b"mas-dummy-salt-1";

/// Why a password could not be hashed or verified.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password is wrong.
    #[error("the password does not match")]
    Mismatch,
    /// The stored hash has a version no configured scheme has.
    #[error("no password hashing scheme has version {0}")]
    UnknownVersion(u16),
    /// The stored hash cannot be read by its scheme.
    #[error("the stored password hash is malformed")]
    MalformedHash,
    /// The hashing library refused (bad parameters).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The blocking task panicked or was cancelled.
    #[error("the password hashing task failed")]
    Task,
}

/// Why the `passwords` section cannot become a [`PasswordManager`].
#[derive(Debug, thiserror::Error)]
pub enum PasswordConfigError {
    /// `passwords.schemes` is empty.
    #[error("passwords.schemes is empty")]
    NoSchemes,
    /// Two schemes share a version.
    #[error("password scheme version {0} is used twice")]
    DuplicateVersion(u16),
    /// A pepper could not be read.
    #[error("password scheme version {version}: secret")]
    Pepper {
        /// The scheme's version.
        version: u16,
        /// What went wrong.
        #[source]
        source: SecretError,
    },
    /// A scheme's parameters are unusable.
    #[error("password scheme version {version}")]
    Scheme {
        /// The scheme's version.
        version: u16,
        /// What went wrong.
        #[source]
        source: PasswordError,
    },
}

/// A successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The hash was made by an older scheme: store a new one made with the current scheme.
    pub needs_upgrade: bool,
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Debug, Clone)]
pub struct PasswordManager {
    current: u16,
    schemes: Arc<BTreeMap<u16, Arc<Hasher>>>,
    minimum_complexity: u8,
    permits: Arc<Semaphore>,
    /// The dummy hash (current scheme), made by the first [`Self::verify_dummy`].
    dummy: Arc<OnceLock<Option<String>>>,
    /// Verifications run so far, dummy ones included (tests and metrics).
    verifications: Arc<AtomicU64>,
}

impl PasswordsConfig {
    /// The runtime password manager for this (validated) section.
    pub fn build_manager(&self) -> Result<PasswordManager, PasswordConfigError> {
        PasswordManager::from_config(self)
    }
}

impl PasswordManager {
    /// Builds the schemes of `config`, reading peppers from their files.
    pub fn from_config(config: &PasswordsConfig) -> Result<Self, PasswordConfigError> {
        let mut schemes = Vec::with_capacity(config.schemes.len());
        for scheme in &config.schemes {
            let version = scheme.version;
            let pepper = scheme
                .pepper()
                .map_err(|source| PasswordConfigError::Pepper { version, source })?;
            let hasher = Hasher::new(
                scheme.algorithm,
                scheme.cost,
                pepper.as_deref(),
                scheme.unicode_normalization,
            )
            .map_err(|source| PasswordConfigError::Scheme { version, source })?;
            schemes.push((version, hasher));
        }
        Self::new(schemes, config.minimum_complexity)
    }

    /// A manager over `(version, scheme)` pairs; the highest version hashes new passwords.
    pub fn new(
        schemes: impl IntoIterator<Item = (u16, Hasher)>,
        minimum_complexity: u8,
    ) -> Result<Self, PasswordConfigError> {
        let mut map = BTreeMap::new();
        for (version, hasher) in schemes {
            if map.insert(version, Arc::new(hasher)).is_some() {
                return Err(PasswordConfigError::DuplicateVersion(version));
            }
        }
        let current = *map
            .keys()
            .next_back()
            .ok_or(PasswordConfigError::NoSchemes)?;
        Ok(Self {
            current,
            schemes: Arc::new(map),
            minimum_complexity,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
            dummy: Arc::new(OnceLock::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The version new hashes get.
    pub fn current_version(&self) -> u16 {
        self.current
    }

    /// Hashes `password` with the current scheme: `(version, hash)`. The salt is drawn
    /// from `rng` before the returned future starts, so the future does not borrow it.
    pub fn hash(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        password: &str,
    ) -> impl Future<Output = Result<(u16, String), PasswordError>> + Send + 'static {
        let job = self.hash_job(rng, password);
        let this = self.clone();
        async move { this.blocking(job).await }
    }

    /// Checks `password` against a stored `hash` of scheme `version`.
    /// [`PasswordError::Mismatch`] when it is wrong.
    pub async fn verify(
        &self,
        version: u16,
        hash: &str,
        password: &str,
    ) -> Result<Verified, PasswordError> {
        let job = self.verify_job(version, hash, password)?;
        self.blocking(job).await
    }

    /// [`verify`](Self::verify), and when the hash is due for an upgrade, hashes the
    /// password with the current scheme in parallel. `Ok(Some((version, hash)))` is the
    /// new hash to store (only returned when the password matched).
    pub fn verify_and_upgrade(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        version: u16,
        hash: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<(u16, String)>, PasswordError>> + Send + 'static {
        let verify = self.verify_job(version, hash, password);
        let upgrade = (version != self.current).then(|| self.hash_job(rng, password));
        let this = self.clone();
        async move {
            let verify = this.blocking(verify?);
            match upgrade {
                None => verify.await.map(|_| None),
                Some(upgrade) => {
                    let (verified, new) = tokio::join!(verify, this.blocking(upgrade));
                    verified?;
                    new.map(Some)
                }
            }
        }
    }

    /// Verifies `password` against a fixed dummy hash of the current scheme, so that a login
    /// for an unknown user, or a user without a password, takes as long as a wrong password
    /// (same scheme, same queue for a permit). The outcome is meaningless and not returned:
    /// the caller answers "invalid credentials" whatever happens. The dummy hash is made on
    /// the first call (one extra hash, once per process).
    pub async fn verify_dummy(&self, password: &str) {
        // Logged here rather than returned: the caller's answer must not change (an error
        // only unknown usernames get would tell them apart again).
        if let Err(error) = self.try_verify_dummy(password).await {
            tracing::error!(error = %error, "dummy password verification failed");
        }
    }

    async fn try_verify_dummy(&self, password: &str) -> Result<(), PasswordError> {
        let version = self.current;
        let hasher = self
            .schemes
            .get(&version)
            .cloned()
            .ok_or(PasswordError::UnknownVersion(version))?;
        let dummy = Arc::clone(&self.dummy);
        let verifications = Arc::clone(&self.verifications);
        let password = Zeroizing::new(password.to_owned());
        self.blocking(move || {
            let hash = dummy
                .get_or_init(|| hasher.hash(DUMMY_PASSWORD, DUMMY_SALT).ok())
                .as_deref()
                .ok_or_else(|| PasswordError::Hashing("cannot make the dummy hash".to_owned()))?;
            verifications.fetch_add(1, Ordering::Relaxed);
            hasher.verify(&password, hash).map(|_| ())
        })
        .await
    }

    /// How many verifications ran, [`verify_dummy`](Self::verify_dummy) ones included.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The zxcvbn score (0 to 4) a new password needs (`passwords.minimum_complexity`).
    pub fn minimum_complexity(&self) -> u8 {
        self.minimum_complexity
    }

    /// Whether `password` is strong enough for a new password (`minimum_complexity`).
    pub fn is_complex_enough(&self, password: &str) -> bool {
        complexity_ok(password, self.minimum_complexity)
    }

    fn hash_job(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        password: &str,
    ) -> impl FnOnce() -> Result<(u16, String), PasswordError> + Send + 'static {
        let mut salt = [0_u8; 16];
        rng.fill_bytes(&mut salt);
        let version = self.current;
        let hasher = self.schemes.get(&version).cloned();
        let password = Zeroizing::new(password.to_owned());
        move || {
            let hasher = hasher.ok_or(PasswordError::UnknownVersion(version))?;
            Ok((version, hasher.hash(&password, salt)?))
        }
    }

    fn verify_job(
        &self,
        version: u16,
        hash: &str,
        password: &str,
    ) -> Result<impl FnOnce() -> Result<Verified, PasswordError> + Send + 'static, PasswordError>
    {
        let hasher = self
            .schemes
            .get(&version)
            .cloned()
            .ok_or(PasswordError::UnknownVersion(version))?;
        let needs_upgrade = version != self.current;
        let (hash, password) = (hash.to_owned(), Zeroizing::new(password.to_owned()));
        let verifications = Arc::clone(&self.verifications);
        Ok(move || {
            verifications.fetch_add(1, Ordering::Relaxed);
            match hasher.verify(&password, &hash)? {
                true => Ok(Verified { needs_upgrade }),
                false => Err(PasswordError::Mismatch),
            }
        })
    }

    /// Runs `job` on the blocking pool once a permit is free.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Task)?;
        tokio::task::spawn_blocking(move || {
            let result = job();
            drop(permit);
            result
        })
        .await
        .map_err(|_| PasswordError::Task)?
    }
}

/// Whether zxcvbn scores `password` at least `minimum` (0–4) without user inputs. zxcvbn
/// looks at the first 100 characters only, which bounds its cost (about a millisecond).
pub fn complexity_ok(password: &str, minimum: u8) -> bool {
    u8::from(zxcvbn::zxcvbn(password, &[]).score()) >= minimum
}

#[cfg(test)]
mod tests;
