//! `database`: where MAS keeps its data. Upstream takes PostgreSQL only; ours also takes a
//! `sqlite://` URL (the appliance's embedded mode) and a `schema` for a shared PostgreSQL
//! database.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Problems, REDACTED};

/// The `database` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (required): `postgresql://user:password@host:5432/database` (or
    /// `postgres://`), or `sqlite:///absolute/path/mas.db` (a relative path is relative to the
    /// working directory). A missing SQLite file is created; its directory must exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PostgreSQL only (an extension of ours): the schema MAS keeps its tables in, created if
    /// missing, so MAS can share a database with Synapse. Absent: the default schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Connections the pool keeps open even when idle.
    pub min_connections: u32,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Seconds to wait for a connection before failing.
    pub connect_timeout: u64,
    /// Seconds after which an idle connection is closed (`null`: never).
    pub idle_timeout: Option<u64>,
    /// Seconds after which a connection is replaced (`null`: never).
    pub max_lifetime: Option<u64>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            uri: None,
            schema: None,
            min_connections: 0,
            max_connections: 10,
            connect_timeout: 30,
            idle_timeout: Some(600),
            max_lifetime: Some(1800),
        }
    }
}

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// `postgresql://` or `postgres://`.
    Postgres,
    /// `sqlite://`.
    Sqlite,
}

impl DatabaseConfig {
    /// The backend and the parsed URL, or why the URI is unusable. The message never
    /// repeats the URI, which may hold a password.
    pub fn backend(&self) -> Result<(DatabaseBackend, Url), String> {
        let Some(uri) = &self.uri else {
            return Err("required: a postgresql:// or sqlite:// URL".to_owned());
        };
        let url = Url::parse(uri).map_err(|error| format!("not a valid URL: {error}"))?;
        let backend = match url.scheme() {
            "postgres" | "postgresql" => DatabaseBackend::Postgres,
            "sqlite" => DatabaseBackend::Sqlite,
            other => {
                return Err(format!(
                    "unsupported scheme `{other}`: use postgresql:// or sqlite://"
                ));
            }
        };
        if backend == DatabaseBackend::Sqlite {
            let file = sqlite_file(uri);
            if file.is_empty() {
                return Err("a sqlite:// URL needs a file path".to_owned());
            }
            if file == ":memory:" || uri.contains("mode=memory") {
                // Every pooled connection would see its own empty database.
                return Err("in-memory SQLite is not supported; give a file path".to_owned());
            }
        }
        Ok((backend, url))
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        let backend = match self.backend() {
            Ok((backend, _)) => Some(backend),
            Err(message) => {
                problems.push("database.uri", message);
                None
            }
        };
        if let Some(schema) = &self.schema {
            if backend == Some(DatabaseBackend::Sqlite) {
                problems.push("database.schema", "only applies to PostgreSQL");
            }
            if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
                problems.push("database.schema", "must be 1 to 63 bytes, without NUL");
            }
        }
        if self.max_connections == 0 {
            problems.push("database.max_connections", "must be at least 1");
        }
        if self.min_connections > self.max_connections {
            problems.push(
                "database.min_connections",
                "must not exceed database.max_connections",
            );
        }
        if self.connect_timeout == 0 {
            problems.push("database.connect_timeout", "must be at least 1 second");
        }
    }

    pub(crate) fn redact(&mut self) {
        let Some(uri) = &self.uri else { return };
        if let Ok(mut url) = Url::parse(uri)
            && url.password().is_some()
            && url.set_password(Some(REDACTED)).is_ok()
        {
            self.uri = Some(url.to_string());
        }
    }
}

/// The file part of a `sqlite:` URL, the way sqlx reads it (scheme and query stripped).
pub(crate) fn sqlite_file(uri: &str) -> &str {
    let rest = uri
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    rest.split('?').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_uri(uri: &str) -> DatabaseConfig {
        DatabaseConfig {
            uri: Some(uri.to_owned()),
            ..DatabaseConfig::default()
        }
    }

    #[test]
    fn accepts_both_postgres_spellings_and_sqlite() {
        for uri in ["postgres://h/db", "postgresql://u:p@h:5432/db"] {
            assert_eq!(
                with_uri(uri).backend().unwrap().0,
                DatabaseBackend::Postgres
            );
        }
        let sqlite = with_uri("sqlite:///abs/mas.db");
        assert_eq!(sqlite.backend().unwrap().0, DatabaseBackend::Sqlite);
    }

    #[test]
    fn refuses_in_memory_sqlite_and_other_schemes() {
        assert!(with_uri("sqlite::memory:").backend().is_err());
        assert!(with_uri("mysql://h/db").backend().is_err());
    }

    #[test]
    fn sqlite_file_strips_scheme_and_query() {
        assert_eq!(sqlite_file("sqlite:///a/b.db?mode=rwc"), "/a/b.db");
        assert_eq!(sqlite_file("sqlite://mas.db"), "mas.db");
    }

    #[test]
    fn redaction_hides_the_password_only() {
        let mut config = with_uri("postgresql://user:secret@host/db");
        config.redact();
        let uri = config.uri.unwrap();
        assert!(!uri.contains("secret"), "{uri}");
        assert!(uri.contains("user"), "{uri}");
    }
}
