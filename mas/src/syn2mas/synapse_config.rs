//! The parts of Synapse's `homeserver.yaml` that syn2mas reads: the server name, the database,
//! the password pepper, and the options the checks look at. Several files merge the way
//! Synapse merges them: top-level keys of a later file replace the earlier file's (Synapse's
//! "Configuration" docs, `--config-path` repeated). Unknown keys are ignored: this is someone
//! else's schema.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// Why Synapse's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SynapseConfigError {
    /// A file cannot be read.
    #[error("cannot read the Synapse config {path}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not YAML, or its keys have the wrong types.
    #[error("the Synapse config {path} is invalid: {message}")]
    Invalid {
        /// The file (or the merged files).
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The `database` section names neither `psycopg2` nor `sqlite3`, or lacks what it needs.
    #[error("Synapse's database section cannot be used: {0}")]
    Database(String),
}

/// What syn2mas reads of Synapse's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SynapseConfig {
    /// `server_name`.
    pub server_name: String,
    /// `database`.
    pub database: Option<DatabaseSection>,
    /// `password_config`.
    pub password_config: PasswordConfig,
    /// `allow_guest_access`.
    pub allow_guest_access: bool,
    /// `enable_3pid_changes`: only an explicit `true` counts (upstream syn2mas reads it so;
    /// Synapse's own default depends on whether auth is delegated).
    pub enable_3pid_changes: Option<bool>,
    /// `login_via_existing_session` (disabled unless `enabled: true`).
    pub login_via_existing_session: Option<Value>,
    /// `enable_registration`.
    pub enable_registration: bool,
    /// `enable_registration_captcha`.
    pub enable_registration_captcha: bool,
    /// `user_consent` (any value but null counts as configured).
    pub user_consent: Option<Value>,
    /// `oidc_providers`.
    pub oidc_providers: Option<Vec<OidcProvider>>,
    /// `oidc_config`: the legacy single provider, whose `idp_id` is `oidc`.
    pub oidc_config: Option<Enabled>,
    /// `password_providers`.
    pub password_providers: Option<Vec<Value>>,
    /// `modules`.
    pub modules: Option<Vec<Module>>,
    /// `cas_config`.
    pub cas_config: Option<Enabled>,
    /// `saml2_config`.
    pub saml2_config: Option<Value>,
    /// `jwt_config` (disabled unless `enabled: true`).
    pub jwt_config: Option<Value>,
}

/// `database`: `name` is `psycopg2` or `sqlite3`; `args` the driver's connection arguments.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DatabaseSection {
    /// The driver.
    pub name: String,
    /// Its arguments.
    pub args: Mapping,
}

/// `password_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PasswordConfig {
    /// `enabled` (default true; `only_for_reauth` counts as enabled).
    pub enabled: Value,
    /// `pepper`.
    pub pepper: Option<String>,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            enabled: Value::Bool(true),
            pepper: None,
        }
    }
}

/// A section with an `enabled` flag (a present section without it counts as enabled, as
/// Synapse does for `oidc_config`, `cas_config` and `jwt_config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Enabled {
    /// `enabled`.
    pub enabled: bool,
}

impl Default for Enabled {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// One `oidc_providers` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OidcProvider {
    /// `idp_id` (Synapse's default is `oidc`).
    pub idp_id: Option<String>,
}

/// One `modules` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Module {
    /// The Python path of the module.
    pub module: String,
}

impl SynapseConfig {
    /// Reads and merges the files.
    pub fn load(files: &[Utf8PathBuf]) -> Result<Self, SynapseConfigError> {
        let mut merged = Mapping::new();
        for path in files {
            let text =
                std::fs::read_to_string(path).map_err(|source| SynapseConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
            let value: Value = serde_yaml::from_str(&text).map_err(|error| invalid(path, error))?;
            match value {
                Value::Mapping(map) => merged.extend(map),
                Value::Null => {}
                _ => return Err(invalid(path, "not a mapping")),
            }
        }
        let joined = files
            .iter()
            .map(|path| path.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        serde_path_to_error::deserialize(Value::Mapping(merged)).map_err(|error| {
            SynapseConfigError::Invalid {
                path: joined,
                message: error.to_string(),
            }
        })
    }

    /// Parses one document (tests).
    pub fn parse(text: &str) -> Result<Self, SynapseConfigError> {
        serde_yaml::from_str(text).map_err(|error| invalid(Utf8Path::new("<text>"), error))
    }

    /// Whether Synapse let people log in with a password.
    pub fn passwords_enabled(&self) -> bool {
        !matches!(self.password_config.enabled, Value::Bool(false))
    }

    /// The `auth_provider` values of the OIDC providers Synapse has configured: `oidc` for the
    /// legacy `oidc_config` and `idp_id` `oidc`, `oidc-<idp_id>` otherwise (Synapse's
    /// `synapse/config/oidc.py` prefixes every other `idp_id`).
    pub fn oidc_auth_providers(&self) -> Vec<String> {
        let mut providers: Vec<String> = self
            .oidc_providers
            .iter()
            .flatten()
            .map(|provider| match provider.idp_id.as_deref() {
                None | Some("oidc") => "oidc".to_owned(),
                Some(id) => format!("oidc-{id}"),
            })
            .collect();
        if self.oidc_config.as_ref().is_some_and(|c| c.enabled) {
            providers.push("oidc".to_owned());
        }
        providers
    }

    /// The database URI: `--synapse-database-uri` when given, else from `database`.
    pub fn database_uri(&self, explicit: Option<&str>) -> Result<String, SynapseConfigError> {
        if let Some(uri) = explicit {
            return Ok(normalise_uri(uri));
        }
        let section = self
            .database
            .as_ref()
            .ok_or_else(|| SynapseConfigError::Database("no `database` section".to_owned()))?;
        let arg = |key: &str| match section.args.get(key) {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        match section.name.as_str() {
            "sqlite3" => arg("database")
                .map(|path| normalise_uri(&path))
                .ok_or_else(|| {
                    SynapseConfigError::Database("sqlite3 without `database`".to_owned())
                }),
            "psycopg2" | "psycopg" => {
                let mut url = url::Url::parse("postgres://localhost/")
                    .map_err(|error| SynapseConfigError::Database(error.to_string()))?;
                let database = arg("database")
                    .or_else(|| arg("dbname"))
                    .unwrap_or_default();
                url.set_path(&database);
                let _ = url.set_username(&arg("user").unwrap_or_default());
                let _ = url.set_password(arg("password").as_deref());
                match arg("host") {
                    // A directory: PostgreSQL's Unix socket.
                    Some(host) if host.starts_with('/') => {
                        url.query_pairs_mut().append_pair("host", &host);
                    }
                    Some(host) => {
                        url.set_host(Some(&host))
                            .map_err(|error| SynapseConfigError::Database(error.to_string()))?;
                    }
                    None => {}
                }
                if let Some(port) = arg("port").and_then(|port| port.parse().ok()) {
                    let _ = url.set_port(Some(port));
                }
                if let Some(options) = arg("options") {
                    url.query_pairs_mut().append_pair("options", &options);
                }
                Ok(url.to_string())
            }
            other => Err(SynapseConfigError::Database(format!(
                "unsupported database driver `{other}` (psycopg2 or sqlite3)"
            ))),
        }
    }
}

fn invalid(path: &Utf8Path, error: impl std::fmt::Display) -> SynapseConfigError {
    SynapseConfigError::Invalid {
        path: path.to_string(),
        message: error.to_string(),
    }
}

/// A plain path becomes a `sqlite://` URI; anything with a scheme stays as it is.
fn normalise_uri(uri: &str) -> String {
    if uri.contains("://") || uri.starts_with("sqlite:") {
        uri.to_owned()
    } else {
        format!("sqlite://{uri}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_replace_top_level_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = Utf8PathBuf::from_path_buf(dir.path().join("a.yaml")).unwrap();
        let b = Utf8PathBuf::from_path_buf(dir.path().join("b.yaml")).unwrap();
        std::fs::write(&a, "server_name: a.test\npassword_config: {pepper: x}\n").unwrap();
        std::fs::write(&b, "password_config: {enabled: false}\n").unwrap();
        let config = SynapseConfig::load(&[a, b]).unwrap();
        assert_eq!(config.server_name, "a.test");
        assert_eq!(config.password_config.pepper, None);
        assert!(!config.passwords_enabled());
    }

    #[test]
    fn oidc_idp_ids_are_prefixed_except_oidc() {
        let config = SynapseConfig::parse(
            "oidc_providers: [{idp_id: cloudron}, {idp_id: oidc}]\noidc_config: {}\n",
        )
        .unwrap();
        assert_eq!(
            config.oidc_auth_providers(),
            ["oidc-cloudron", "oidc", "oidc"]
        );
    }

    #[test]
    fn database_uri_comes_from_psycopg2_args() {
        let config = SynapseConfig::parse(
            "database:\n  name: psycopg2\n  args: {user: syn, password: 'p@ss', database: synapse, \
             host: db.local, port: 5433, options: '-csearch_path=synapse'}\n",
        )
        .unwrap();
        assert_eq!(
            config.database_uri(None).unwrap(),
            "postgres://syn:p%40ss@db.local:5433/synapse?options=-csearch_path%3Dsynapse"
        );
        let socket = SynapseConfig::parse(
            "database: {name: psycopg2, args: {user: s, dbname: d, host: /run/pg}}",
        )
        .unwrap();
        assert_eq!(
            socket.database_uri(None).unwrap(),
            "postgres://s@localhost/d?host=%2Frun%2Fpg"
        );
    }

    #[test]
    fn sqlite_paths_and_explicit_uris() {
        let config =
            SynapseConfig::parse("database: {name: sqlite3, args: {database: /d/h.db}}").unwrap();
        assert_eq!(config.database_uri(None).unwrap(), "sqlite:///d/h.db");
        assert_eq!(
            config.database_uri(Some("/other.db")).unwrap(),
            "sqlite:///other.db"
        );
        assert_eq!(
            config.database_uri(Some("postgres://u@h/db")).unwrap(),
            "postgres://u@h/db"
        );
        let none = SynapseConfig::default();
        assert!(none.database_uri(None).is_err());
    }
}
