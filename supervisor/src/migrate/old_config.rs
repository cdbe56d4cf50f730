//! Reading another Synapse's `homeserver.yaml` (and the files it names): what the appliance
//! imports from it. Relative paths are taken from the config file's directory: Synapse resolves
//! them against its working directory, which is the config's directory in the official Docker
//! image (`/data`); the Debian package writes absolute paths.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// What the appliance takes from an old Synapse's config.
#[derive(Clone, PartialEq, Eq)]
pub struct OldSynapse {
    /// The config file itself (absolute when given absolute).
    pub path: PathBuf,
    pub server_name: String,
    /// `signing_key_path`, resolved; the file exists.
    pub signing_key: PathBuf,
    /// `macaroon_secret_key` (or the contents of `macaroon_secret_key_path`).
    pub macaroon_secret_key: Option<String>,
    /// `form_secret` (or the contents of `form_secret_path`).
    pub form_secret: Option<String>,
    /// `media_store_path` (default `media_store`), resolved; it may not exist.
    pub media_store: PathBuf,
    pub database: OldDatabase,
    /// `password_config.pepper`.
    pub pepper: Option<String>,
    /// Whether people could sign in with a password (`password_config.enabled` not false nor
    /// `only_for_reauth`, and `localdb_enabled` not false).
    pub password_login: bool,
    /// Synapse's auth provider ids of the OIDC providers (`oidc` or `oidc-<idp_id>`).
    pub oidc_provider_ids: Vec<String>,
}

impl std::fmt::Debug for OldSynapse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("OldSynapse")
            .field("path", &self.path)
            .field("server_name", &self.server_name)
            .field("signing_key", &self.signing_key)
            .field("media_store", &self.media_store)
            .field("database", &self.database)
            .field("password_login", &self.password_login)
            .field("oidc_provider_ids", &self.oidc_provider_ids)
            .finish_non_exhaustive()
    }
}

/// The old Synapse's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldDatabase {
    /// `name: sqlite3`: the file (resolved).
    Sqlite(PathBuf),
    /// `name: psycopg2`: where it is (the password is not needed to compare).
    Postgres {
        host: String,
        port: u16,
        user: String,
        dbname: String,
    },
}

/// Why the old config cannot be imported: every problem, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .lines.join("; "))]
pub struct OldConfigError {
    pub lines: Vec<String>,
}

impl OldSynapse {
    /// Reads `path` and the files it references.
    pub fn read(path: &Path) -> Result<Self, OldConfigError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| OldConfigError {
            lines: vec![format!("{shown}: cannot read: {e}")],
        })?;
        let yaml: Value = serde_yaml::from_str(&text).map_err(|e| OldConfigError {
            lines: vec![format!("{shown}: not valid YAML: {e}")],
        })?;
        Self::from_yaml(path, &yaml)
    }

    /// Reads the parsed config; `path` anchors relative paths and names the file in messages.
    pub fn from_yaml(path: &Path, yaml: &Value) -> Result<Self, OldConfigError> {
        let shown = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
        let resolve = |p: &str| dir.join(p);
        let mut lines = Vec::new();
        let text = |key: &str| yaml.get(key).and_then(Value::as_str).map(str::to_owned);

        let server_name = text("server_name").unwrap_or_else(|| {
            lines.push(format!("{shown}: server_name: not set"));
            String::new()
        });
        let signing_key = match text("signing_key_path") {
            Some(p) => {
                let p = resolve(&p);
                if !p.is_file() {
                    lines.push(format!(
                        "{shown}: signing_key_path: {} does not exist (it is the server's \
                         federation identity: copy it there or fix the path)",
                        p.display()
                    ));
                }
                p
            }
            None => {
                lines.push(format!("{shown}: signing_key_path: not set"));
                PathBuf::new()
            }
        };
        let mut secret = |key: &str| -> Option<String> {
            if let Some(v) = text(key) {
                return Some(v);
            }
            let file = text(&format!("{key}_path"))?;
            let file = resolve(&file);
            match std::fs::read_to_string(&file) {
                Ok(v) => Some(v.trim().to_owned()),
                Err(e) => {
                    lines.push(format!("{shown}: {key}_path: {}: {e}", file.display()));
                    None
                }
            }
        };
        let macaroon_secret_key = secret("macaroon_secret_key");
        let form_secret = secret("form_secret");
        let media_store =
            resolve(&text("media_store_path").unwrap_or_else(|| "media_store".into()));
        let database = database(yaml, &resolve).unwrap_or_else(|e| {
            lines.push(format!("{shown}: {e}"));
            OldDatabase::Sqlite(PathBuf::new())
        });
        let password_config = yaml.get("password_config");
        let pepper = password_config
            .and_then(|p| p.get("pepper"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let enabled = password_config.and_then(|p| p.get("enabled"));
        let localdb = password_config
            .and_then(|p| p.get("localdb_enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let password_login = localdb && matches!(enabled, None | Some(Value::Bool(true)));
        if !lines.is_empty() {
            return Err(OldConfigError { lines });
        }
        Ok(OldSynapse {
            path: path.to_owned(),
            server_name,
            signing_key,
            macaroon_secret_key,
            form_secret,
            media_store,
            database,
            pepper,
            password_login,
            oidc_provider_ids: oidc_provider_ids(yaml),
        })
    }
}

/// The `database` section: `sqlite3` (default `homeserver.db` next to the config, as Synapse's
/// `database_path`) or `psycopg2`.
fn database(yaml: &Value, resolve: &dyn Fn(&str) -> PathBuf) -> Result<OldDatabase, String> {
    let Some(section) = yaml.get("database") else {
        let path = yaml
            .get("database_path")
            .and_then(Value::as_str)
            .unwrap_or("homeserver.db");
        return Ok(OldDatabase::Sqlite(resolve(path)));
    };
    let args = section.get("args");
    let arg = |k: &str| {
        args.and_then(|a| a.get(k)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    match section.get("name").and_then(Value::as_str) {
        Some("sqlite3") => Ok(OldDatabase::Sqlite(resolve(
            &arg("database").unwrap_or_else(|| "homeserver.db".into()),
        ))),
        Some("psycopg2") => Ok(OldDatabase::Postgres {
            host: arg("host").unwrap_or_else(|| "localhost".into()),
            port: arg("port").and_then(|p| p.parse().ok()).unwrap_or(5432),
            user: arg("user").unwrap_or_default(),
            dbname: arg("dbname")
                .or_else(|| arg("database"))
                .unwrap_or_default(),
        }),
        other => Err(format!(
            "database.name: {other:?} is neither sqlite3 nor psycopg2"
        )),
    }
}

/// Synapse's auth provider ids (`user_external_ids.auth_provider`) of the configured OIDC
/// providers: `idp_id` defaults to `oidc`, and any other is prefixed `oidc-` (Synapse's
/// `synapse/config/oidc.py`). A legacy `oidc_config` counts when `enabled`.
fn oidc_provider_ids(yaml: &Value) -> Vec<String> {
    let rule = |p: &Value| match p.get("idp_id").and_then(Value::as_str) {
        None | Some("oidc") => "oidc".to_owned(),
        Some(id) => format!("oidc-{id}"),
    };
    let mut ids: Vec<String> = yaml
        .get("oidc_providers")
        .and_then(Value::as_sequence)
        .map(|list| list.iter().map(rule).collect())
        .unwrap_or_default();
    if let Some(legacy) = yaml.get("oidc_config")
        && legacy.get("enabled").and_then(Value::as_bool) == Some(true)
    {
        ids.push(rule(legacy));
    }
    ids
}
