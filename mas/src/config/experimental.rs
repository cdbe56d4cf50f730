//! `experimental`: token lifetimes and other knobs upstream keeps under this name.

use serde::{Deserialize, Serialize};

use super::Problems;

/// The `experimental` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentalConfig {
    /// Lifetime of OAuth 2.0 access tokens, in seconds (60 to 86400). Clients refresh them.
    pub access_token_ttl: u64,
    /// Lifetime of refreshable compatibility access tokens, in seconds (60 to 86400).
    /// Compatibility tokens of clients that did not ask for refresh never expire.
    pub compat_token_ttl: u64,
}

impl Default for ExperimentalConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: 300,
            compat_token_ttl: 300,
        }
    }
}

impl ExperimentalConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        for (key, value) in [
            ("experimental.access_token_ttl", self.access_token_ttl),
            ("experimental.compat_token_ttl", self.compat_token_ttl),
        ] {
            if !(60..=86_400).contains(&value) {
                problems.push(key, format!("{value} is outside 60..=86400 seconds"));
            }
        }
    }
}
