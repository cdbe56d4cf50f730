//! `matrix`: the homeserver MAS serves and the shared secret of its `/_synapse/mas` API.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{Problems, REDACTED, SecretError, secret};

/// The `matrix` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixConfig {
    /// Which homeserver API MAS talks to.
    pub kind: HomeserverKind,
    /// The homeserver's server name (the part after `:` in user IDs).
    pub homeserver: String,
    /// Secret shared with the homeserver (`matrix_authentication_service.secret` in Synapse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// File holding the shared secret (surrounding whitespace is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<Utf8PathBuf>,
    /// URL MAS uses to reach the homeserver's API.
    pub endpoint: Url,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        Self {
            kind: HomeserverKind::Synapse,
            homeserver: "localhost:8008".to_owned(),
            secret: None,
            secret_file: None,
            endpoint: Url::parse("http://localhost:8008/").expect("a constant, valid URL"),
        }
    }
}

/// The homeserver API flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeserverKind {
    /// Synapse's `/_synapse/mas` API.
    Synapse,
    /// Synapse, but MAS never writes to it.
    SynapseReadOnly,
    /// Synapse's older admin API.
    SynapseLegacy,
    /// Alias of `synapse`.
    SynapseModern,
}

impl MatrixConfig {
    /// The shared secret, from `secret` or `secret_file`.
    pub fn load_secret(&self) -> Result<String, SecretError> {
        let value = secret::read(
            "secret",
            self.secret.as_deref(),
            self.secret_file.as_deref(),
        )?;
        if value.is_empty() {
            return Err(SecretError::Invalid("the secret is empty".to_owned()));
        }
        Ok(value)
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.homeserver.is_empty() {
            problems.push(
                "matrix.homeserver",
                "must name the homeserver's server name",
            );
        }
        if !matches!(self.endpoint.scheme(), "http" | "https") {
            problems.push("matrix.endpoint", "must be an http:// or https:// URL");
        }
        if let Err(error) = self.load_secret() {
            error.report(problems, "matrix", "secret");
        }
    }

    pub(crate) fn redact(&mut self) {
        if self.secret.is_some() {
            self.secret = Some(REDACTED.to_owned());
        }
    }
}
