//! mas-cli's configuration: one struct per section, with upstream MAS key names so upstream's
//! documentation carries over. Files are deep-merged in order, parsed strictly (unknown keys
//! are errors) and then [`RootConfig::validate`]d, which reports every problem at once.
//!
//! This module only describes and checks; turning a section into a runtime object (a pool,
//! loaded keys) is a method on that section or lives in the module that owns the object.

mod account;
mod branding;
pub mod clients;
mod database;
mod email;
mod experimental;
mod http;
mod matrix;
mod merge;
mod passwords;
mod secret;
mod secrets;
mod templates;
pub mod upstream;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

pub use self::account::AccountConfig;
pub use self::branding::BrandingConfig;
pub use self::clients::{ClientConfig, ClientConfigError};
pub(crate) use self::database::sqlite_file;
pub use self::database::{DatabaseBackend, DatabaseConfig};
pub use self::email::{EmailConfig, EmailTransport, SmtpMode};
pub use self::experimental::ExperimentalConfig;
pub(crate) use self::http::parse_cidr;
pub use self::http::{BindConfig, HttpConfig, ListenerConfig, Resource};
pub use self::matrix::{HomeserverKind, MatrixConfig};
pub use self::merge::merge;
pub use self::passwords::{HashingAlgorithm, HashingScheme, PasswordsConfig};
pub use self::secret::SecretError;
pub use self::secrets::{EncryptionKey, KeyConfig, KeyLoadError, LoadedKey, SecretsConfig};
pub use self::templates::TemplatesConfig;
pub use self::upstream::{ProviderConfig, UpstreamOAuth2Config};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RootConfig {
    /// Public URLs and the HTTP listeners.
    pub http: HttpConfig,
    /// Where MAS keeps its data (PostgreSQL or SQLite).
    pub database: DatabaseConfig,
    /// The homeserver this MAS authenticates for, and how to reach it.
    pub matrix: MatrixConfig,
    /// Encryption key and token-signing keys.
    pub secrets: SecretsConfig,
    /// Local password authentication.
    pub passwords: PasswordsConfig,
    /// What users may do with their own account.
    pub account: AccountConfig,
    /// How the pages present the service (the terms of service registration asks for).
    pub branding: BrandingConfig,
    /// Where the web page and email templates are.
    pub templates: TemplatesConfig,
    /// Outgoing email.
    pub email: EmailConfig,
    /// Token lifetimes.
    pub experimental: ExperimentalConfig,
    /// OAuth 2.0 clients declared here instead of registered dynamically.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientConfig>,
    /// Upstream OpenID Connect providers people log in with.
    #[serde(skip_serializing_if = "UpstreamOAuth2Config::is_empty")]
    pub upstream_oauth2: UpstreamOAuth2Config,
}

impl RootConfig {
    /// Every problem in the configuration, each with the dotted path of the offending key.
    /// Reads secret files (to check them) but changes nothing.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Problems::default();
        self.http.validate(&mut problems);
        self.database.validate(&mut problems);
        self.matrix.validate(&mut problems);
        self.secrets.validate(&mut problems);
        self.passwords.validate(&mut problems);
        self.email.validate(&mut problems);
        self.branding.validate(&mut problems);
        self.experimental.validate(&mut problems);
        clients::validate(&self.clients, &mut problems);
        upstream::validate(&self.upstream_oauth2, &mut problems);
        problems.0
    }

    /// A copy with every inline secret replaced by a placeholder, for `config dump`.
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut config = self.clone();
        config.database.redact();
        config.matrix.redact();
        config.secrets.redact();
        config.passwords.redact();
        config.email.redact();
        clients::redact(&mut config.clients);
        upstream::redact(&mut config.upstream_oauth2);
        config
    }
}

/// What replaces a secret in redacted output.
pub(crate) const REDACTED: &str = "<redacted>";

/// One configuration problem: the dotted path of the key (`http.listeners[0].prefix`) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending key.
    pub path: String,
    /// What is wrong, for an operator.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects problems during validation.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("config file {path} is not valid YAML")]
    Yaml {
        /// The file.
        path: Utf8PathBuf,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// The merged document does not match the schema.
    #[error("config {path}: {message}")]
    Schema {
        /// Dotted path of the offending key (`.` for the root).
        path: String,
        /// The deserializer's message.
        message: String,
    },
}

/// Loads the files in order, deep-merges them (later files win) and parses the result.
pub fn load<P: AsRef<Utf8Path>>(paths: &[P]) -> Result<RootConfig, ConfigError> {
    from_value(load_merged(paths)?)
}

/// Loads and deep-merges the files without parsing them into [`RootConfig`].
pub fn load_merged<P: AsRef<Utf8Path>>(paths: &[P]) -> Result<serde_yaml::Value, ConfigError> {
    let mut merged = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let yaml_error = |source| ConfigError::Yaml {
            path: path.to_owned(),
            source,
        };
        let mut value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(yaml_error)?;
        // `<<: *anchor` merge keys inside one file.
        value.apply_merge().map_err(yaml_error)?;
        merge(&mut merged, value);
    }
    Ok(merged)
}

/// Parses an already merged document.
pub fn from_value(value: serde_yaml::Value) -> Result<RootConfig, ConfigError> {
    // An empty file is an empty mapping, not a null document.
    let value = match value {
        serde_yaml::Value::Null => serde_yaml::Value::Mapping(serde_yaml::Mapping::new()),
        other => other,
    };
    serde_path_to_error::deserialize(value).map_err(|error| ConfigError::Schema {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// Parses one YAML document (for tests and tools).
pub fn from_str(text: &str) -> Result<RootConfig, ConfigError> {
    let value = serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
        path: Utf8PathBuf::from("<string>"),
        source,
    })?;
    from_value(value)
}

#[cfg(test)]
mod tests;
