//! `passwords`: local password login and how passwords are hashed.

use std::collections::HashSet;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use super::{Problems, REDACTED, SecretError, secret};

/// The `passwords` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Whether users may log in with a password (`false`: upstream login only).
    pub enabled: bool,
    /// Minimum zxcvbn score (0 to 4) a new password needs.
    pub minimum_complexity: u8,
    /// Hashing schemes. The highest `version` hashes new passwords; the others still verify
    /// old hashes, which are upgraded on the next successful login.
    pub schemes: Vec<HashingScheme>,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            minimum_complexity: 3,
            schemes: vec![HashingScheme {
                version: 1,
                algorithm: HashingAlgorithm::Argon2id,
                cost: None,
                secret: None,
                secret_file: None,
                unicode_normalization: false,
            }],
        }
    }
}

/// One password hashing scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashingScheme {
    /// Unique version number, stored with every hash.
    pub version: u16,
    /// The algorithm.
    pub algorithm: HashingAlgorithm,
    /// bcrypt cost (default 12); only for `bcrypt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// A pepper mixed into every hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// File holding the pepper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<Utf8PathBuf>,
    /// Apply Unicode NFKC normalisation before hashing (Synapse does, for imported hashes).
    #[serde(default)]
    pub unicode_normalization: bool,
}

/// A password hashing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashingAlgorithm {
    /// Argon2id (the default for new passwords).
    Argon2id,
    /// bcrypt (Synapse's hashes).
    Bcrypt,
    /// PBKDF2.
    Pbkdf2,
}

impl HashingScheme {
    /// The pepper, from `secret` or `secret_file`, if any.
    pub fn pepper(&self) -> Result<Option<String>, SecretError> {
        secret::read_optional(
            "secret",
            self.secret.as_deref(),
            self.secret_file.as_deref(),
        )
    }
}

impl PasswordsConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.minimum_complexity > 4 {
            problems.push("passwords.minimum_complexity", "must be between 0 and 4");
        }
        if self.enabled && self.schemes.is_empty() {
            problems.push(
                "passwords.schemes",
                "at least one scheme is needed while passwords are enabled",
            );
        }
        let mut versions = HashSet::new();
        for (i, scheme) in self.schemes.iter().enumerate() {
            let path = format!("passwords.schemes[{i}]");
            if !versions.insert(scheme.version) {
                problems.push(
                    format!("{path}.version"),
                    format!("version {} is used twice", scheme.version),
                );
            }
            match (scheme.algorithm, scheme.cost) {
                (HashingAlgorithm::Bcrypt, Some(cost)) if !(4..=31).contains(&cost) => {
                    problems.push(format!("{path}.cost"), "must be between 4 and 31");
                }
                (HashingAlgorithm::Argon2id | HashingAlgorithm::Pbkdf2, Some(_)) => {
                    problems.push(format!("{path}.cost"), "only applies to bcrypt");
                }
                _ => {}
            }
            if let Err(error) = scheme.pepper() {
                error.report(problems, &path, "secret");
            }
        }
    }

    pub(crate) fn redact(&mut self) {
        for scheme in &mut self.schemes {
            if scheme.secret.is_some() {
                scheme.secret = Some(REDACTED.to_owned());
            }
        }
    }
}
