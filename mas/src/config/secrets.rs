//! `secrets`: the encryption key (cookies, encrypted database fields) and the token-signing
//! keys.

use std::collections::HashSet;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use super::{Problems, REDACTED, SecretError, secret};
use crate::crypto::SigningKey;

/// The `secrets` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The encryption key: 32 bytes as 64 hex characters. Never change it: cookies and
    /// encrypted database fields become unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// File holding the encryption key (64 hex characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_file: Option<Utf8PathBuf>,
    /// Signing keys for ID tokens and JWT client authentication. At least one RSA key is
    /// needed (RS256 is mandatory in OpenID Connect).
    pub keys: Vec<KeyConfig>,
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key ID published in the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The private key as PEM (PKCS#8, PKCS#1 or SEC1), RSA or EC P-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// File holding the private key as PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<Utf8PathBuf>,
}

/// A signing key read from the configuration.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// Its configured key ID.
    pub kid: Option<String>,
    /// The key.
    pub key: SigningKey,
}

/// A signing key that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("secrets.keys[{index}]")]
pub struct KeyLoadError {
    /// Its index in `secrets.keys`.
    pub index: usize,
    /// What went wrong.
    #[source]
    pub source: SecretError,
}

/// The 32-byte encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(pub [u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

impl SecretsConfig {
    /// The encryption key, from `encryption` or `encryption_file`.
    pub fn encryption_key(&self) -> Result<EncryptionKey, SecretError> {
        let text = secret::read(
            "encryption",
            self.encryption.as_deref(),
            self.encryption_file.as_deref(),
        )?;
        let mut key = [0_u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            SecretError::Invalid("must be 32 bytes as 64 hexadecimal characters".to_owned())
        })?;
        Ok(EncryptionKey(key))
    }

    /// Every signing key, read and parsed.
    pub fn load_keys(&self) -> Result<Vec<LoadedKey>, KeyLoadError> {
        self.keys
            .iter()
            .enumerate()
            .map(|(index, config)| {
                let key = config
                    .load()
                    .map_err(|source| KeyLoadError { index, source })?;
                Ok(LoadedKey {
                    kid: config.kid.clone(),
                    key,
                })
            })
            .collect()
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        if let Err(error) = self.encryption_key() {
            error.report(problems, "secrets", "encryption");
        }
        if self.keys.is_empty() {
            problems.push("secrets.keys", "at least one signing key (RSA) is required");
            return;
        }
        let mut has_rsa = false;
        let mut all_loaded = true;
        let mut kids = HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            let path = format!("secrets.keys[{i}]");
            match key.load() {
                Ok(loaded) => has_rsa |= matches!(loaded, SigningKey::Rsa(_)),
                Err(error) => {
                    all_loaded = false;
                    error.report(problems, &path, "key");
                }
            }
            if let Some(kid) = &key.kid
                && !kids.insert(kid)
            {
                problems.push(format!("{path}.kid"), format!("duplicate kid `{kid}`"));
            }
        }
        if all_loaded && !has_rsa {
            problems.push(
                "secrets.keys",
                "at least one RSA key is required (RS256 is mandatory in OpenID Connect)",
            );
        }
    }

    pub(crate) fn redact(&mut self) {
        if self.encryption.is_some() {
            self.encryption = Some(REDACTED.to_owned());
        }
        for key in &mut self.keys {
            if key.key.is_some() {
                key.key = Some(REDACTED.to_owned());
            }
        }
    }
}

impl KeyConfig {
    /// Reads and parses this key.
    pub fn load(&self) -> Result<SigningKey, SecretError> {
        let pem = secret::read("key", self.key.as_deref(), self.key_file.as_deref())?;
        SigningKey::from_pem(&pem).map_err(|error| SecretError::Invalid(error.to_string()))
    }
}
