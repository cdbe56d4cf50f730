//! The environment, parsed once into a typed [`Env`] (docs/architecture.md#environment).
//!
//! Parsing reads variables through a [`Source`], so tests can feed a plain map. Every problem is
//! collected (named after its variable) and reported together, before anything starts or is
//! written. This module does no I/O besides reading `NAME_FILE` secret files.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

mod account;
mod server_name;
mod services;

pub use account::{AccountPolicy, Registration};
pub use services::{Mail, Oidc, Turn};

pub use server_name::{ServerNameError, default_server_name, validate_server_name};

/// Where variables come from: the process environment in production, a map in tests.
pub trait Source {
    /// The value of `name`, if set (an empty value counts as unset).
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Source for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProblem {
    pub variable: String,
    pub message: String,
}

impl fmt::Display for EnvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every problem found in the environment.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EnvErrors(pub Vec<EnvProblem>);

/// The database both services use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// Embedded default: SQLite files in the data dir.
    Sqlite,
    /// The platform's PostgreSQL database, shared (Synapse in `public`, MAS in `mas`).
    Postgres(Postgres),
}

/// Connection settings of the shared PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    /// The variable that configured it, for messages (`CLOUDRON_POSTGRESQL_URL` or `_HOST`).
    pub variable: &'static str,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

impl Postgres {
    /// A `postgresql://` URL with every part percent-encoded.
    pub fn url(&self) -> String {
        let mut url = Url::parse("postgresql://localhost/").expect("static URL parses");
        // The setters only fail for URLs that cannot have a host, which this one can.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        if !self.password.is_empty() {
            let _ = url.set_password(Some(&self.password));
        }
        url.set_path(&self.database);
        url.to_string()
    }

    /// `host:port`, for messages (never the password).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Everything the appliance reads from its environment.
#[derive(Debug, Clone)]
pub struct Env {
    /// `CLOUDRON=1`.
    pub cloudron: bool,
    /// Public origin, `scheme://host[:port]`, no path and no trailing slash.
    pub origin: Url,
    /// Public host name (`CLOUDRON_APP_DOMAIN`, or the origin's host).
    pub app_domain: String,
    /// `APPLIANCE_SERVER_NAME` when set; otherwise the derived default is used.
    pub server_name: String,
    /// Whether `server_name` was set explicitly (an explicit value must match the pinned one).
    pub server_name_explicit: bool,
    pub database: Database,
    pub oidc: Option<Oidc>,
    pub mail: Option<Mail>,
    pub turn: Option<Turn>,
    /// `CLOUDRON_PROXY_IP`: the only non-loopback address whose `X-Forwarded-For` is trusted.
    pub proxy_ip: Option<IpAddr>,
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    /// The Python that has `matrix-synapse` installed (`None`: not found; only `run` needs it).
    pub synapse_python: Option<PathBuf>,
    pub http_port: u16,
    pub synapse_port: u16,
    pub mas_port: u16,
    pub stop_timeout: Duration,
    pub password_login: bool,
    /// Whether `APPLIANCE_PASSWORD_LOGIN` was set (a choice a migrated Synapse's password login
    /// does not override).
    pub password_login_explicit: bool,
    /// The user to run as when started as root (`cloudron` on Cloudron, else `APPLIANCE_USER`).
    pub user: Option<String>,
    /// How long to wait for an unreachable database (`APPLIANCE_DB_WAIT`).
    pub db_wait: Duration,
    /// Connections the public port serves at once (`APPLIANCE_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a client may pause while sending request headers or a request body
    /// (`APPLIANCE_REQUEST_IDLE_TIMEOUT`).
    pub request_idle_timeout: Duration,
    /// `APPLIANCE_REGISTRATION`: who may create an account.
    pub registration: Registration,
    /// `APPLIANCE_TERMS_URL`: the terms people accept at registration.
    pub terms_url: Option<Url>,
}

impl Env {
    /// Reads the process environment. `cwd` anchors relative paths.
    pub fn from_process(cwd: &Path) -> Result<Self, EnvErrors> {
        Self::parse(&ProcessEnv, cwd)
    }

    /// The origin as a string without trailing slash, e.g. `https://matrix.example.com`.
    pub fn origin_str(&self) -> String {
        self.origin.as_str().trim_end_matches('/').to_owned()
    }

    /// Parses every variable, collecting all problems.
    pub fn parse(src: &dyn Source, cwd: &Path) -> Result<Self, EnvErrors> {
        let mut p = Parser {
            src,
            problems: Vec::new(),
        };
        let cloudron = p.bool("CLOUDRON", false);

        let origin = p.origin();
        let app_domain = match p.src.var("CLOUDRON_APP_DOMAIN") {
            Some(d) => d.to_ascii_lowercase(),
            None => origin
                .as_ref()
                .and_then(|o| o.host_str())
                .unwrap_or_default()
                .to_owned(),
        };
        let server_name = p.server_name(cloudron, origin.as_ref(), &app_domain);
        let database = p.database();
        let oidc = p.oidc();
        let mail = p.mail();
        let turn = p.turn();
        let proxy_ip = p.parse_with("CLOUDRON_PROXY_IP", "an IP address", |v| v.parse().ok());

        let data_dir = match p.src.var("APPLIANCE_DATA_DIR") {
            Some(d) => cwd.join(d),
            None if cloudron => PathBuf::from("/app/data"),
            None => cwd.join("data"),
        };
        let run_dir = match p.src.var("APPLIANCE_RUN_DIR") {
            Some(d) => cwd.join(d),
            None if cloudron => PathBuf::from("/run/appliance"),
            None => data_dir.join("run"),
        };
        let synapse_python = p.synapse_python(cwd);

        let http_port = p.port("APPLIANCE_HTTP_PORT", 8000);
        let synapse_port = p.port("APPLIANCE_SYNAPSE_PORT", 8008);
        let mas_port = p.port("APPLIANCE_MAS_PORT", 8080);
        p.distinct_ports(&[
            ("APPLIANCE_HTTP_PORT", http_port),
            ("APPLIANCE_SYNAPSE_PORT", synapse_port),
            ("APPLIANCE_MAS_PORT", mas_port),
        ]);
        let stop_timeout = p.seconds("APPLIANCE_STOP_TIMEOUT", 10, 2);
        let db_wait = p.seconds("APPLIANCE_DB_WAIT", 30, 0);
        let max_connections = p.count("APPLIANCE_MAX_CONNECTIONS", 1024, 1..=1_000_000);
        let request_idle_timeout =
            Duration::from_secs(p.count("APPLIANCE_REQUEST_IDLE_TIMEOUT", 30, 1..=3600) as u64);
        let password_login = p.bool("APPLIANCE_PASSWORD_LOGIN", oidc.is_none());
        let password_login_explicit = p.src.var("APPLIANCE_PASSWORD_LOGIN").is_some();
        let registration = p.registration();
        let terms_url = p.terms_url();
        p.registration_needs_passwords(registration, password_login, password_login_explicit);
        let user = match p.src.var("APPLIANCE_USER") {
            Some(u) => Some(u),
            None if cloudron => Some("cloudron".to_owned()),
            None => None,
        };

        let (server_name, server_name_explicit) = server_name;
        if !p.problems.is_empty() {
            return Err(EnvErrors(p.problems));
        }
        Ok(Env {
            cloudron,
            origin: origin.expect("no problems means the origin parsed"),
            app_domain,
            server_name,
            server_name_explicit,
            database,
            oidc,
            mail,
            turn,
            proxy_ip,
            data_dir,
            run_dir,
            synapse_python,
            http_port,
            synapse_port,
            mas_port,
            stop_timeout,
            password_login,
            password_login_explicit,
            user,
            db_wait,
            max_connections,
            request_idle_timeout,
            registration,
            terms_url,
        })
    }

    /// What people may do with accounts of their own, with password login as `password_login`
    /// (the environment's, or the one a Synapse takeover kept on).
    pub fn account_policy(&self, password_login: bool) -> AccountPolicy {
        AccountPolicy::new(self.registration, self.mail.is_some(), password_login)
    }
}

struct Parser<'a> {
    src: &'a dyn Source,
    problems: Vec<EnvProblem>,
}

impl Parser<'_> {
    fn problem(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(EnvProblem {
            variable: variable.to_owned(),
            message: message.into(),
        });
    }

    /// A secret: `NAME` or the contents of the file named by `NAME_FILE` (trailing newline
    /// trimmed), never both.
    fn secret(&mut self, name: &str) -> Option<String> {
        let file_var = format!("{name}_FILE");
        match (self.src.var(name), self.src.var(&file_var)) {
            (Some(_), Some(_)) => {
                self.problem(name, format!("set either {name} or {file_var}, not both"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(v) => {
                    Some(v.trim_end_matches(['\r', '\n']).to_owned()).filter(|v| !v.is_empty())
                }
                Err(e) => {
                    self.problem(&file_var, format!("cannot read {path:?}: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn parse_with<T>(
        &mut self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.src.var(name)?;
        let parsed = parse(raw.trim());
        if parsed.is_none() {
            self.problem(name, format!("{raw:?} is not {expected}"));
        }
        parsed
    }

    fn bool(&mut self, name: &str, default: bool) -> bool {
        self.parse_with(name, "a boolean (true/false, 1/0, yes/no)", |v| {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => None,
            }
        })
        .unwrap_or(default)
    }

    fn port(&mut self, name: &str, default: u16) -> u16 {
        self.parse_with(name, "a port number (1-65535)", |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        })
        .unwrap_or(default)
    }

    fn optional_port(&mut self, name: &str) -> Option<u16> {
        self.parse_with(name, "a port number (1-65535)", |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        })
    }

    fn seconds(&mut self, name: &str, default: u64, min: u64) -> Duration {
        let expected = format!("a whole number of seconds (at least {min})");
        let secs = self.parse_with(name, &expected, |v| {
            v.parse::<u64>().ok().filter(|s| *s >= min)
        });
        Duration::from_secs(secs.unwrap_or(default))
    }

    /// A whole number in `range` (`APPLIANCE_MAX_CONNECTIONS`, or seconds with an upper bound).
    fn count(
        &mut self,
        name: &str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> usize {
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        self.parse_with(name, &expected, |v| {
            v.parse::<usize>().ok().filter(|n| range.contains(n))
        })
        .unwrap_or(default)
    }

    fn distinct_ports(&mut self, ports: &[(&str, u16)]) {
        for (i, (a, pa)) in ports.iter().enumerate() {
            for (b, pb) in &ports[i + 1..] {
                if pa == pb {
                    self.problem(
                        b,
                        format!("port {pb} is also used by {a}; each needs its own"),
                    );
                }
            }
        }
    }

    fn origin(&mut self) -> Option<Url> {
        const NAME: &str = "CLOUDRON_APP_ORIGIN";
        let Some(raw) = self.src.var(NAME) else {
            return Some(Url::parse("http://localhost:8000").expect("static URL parses"));
        };
        let url = match Url::parse(raw.trim()) {
            Ok(u) => u,
            Err(e) => {
                self.problem(NAME, format!("{raw:?} is not a valid URL ({e})"));
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            self.problem(
                NAME,
                format!("{raw:?} must be an http:// or https:// origin with a host"),
            );
            return None;
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.problem(
                NAME,
                format!("{raw:?} must be an origin only (no path, query or fragment)"),
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(NAME, format!("{raw:?} must not contain credentials"));
            return None;
        }
        Some(url)
    }

    fn server_name(
        &mut self,
        cloudron: bool,
        origin: Option<&Url>,
        app_domain: &str,
    ) -> (String, bool) {
        const NAME: &str = "APPLIANCE_SERVER_NAME";
        if let Some(v) = self.src.var(NAME) {
            let v = v.trim().to_ascii_lowercase();
            if let Err(e) = validate_server_name(&v) {
                self.problem(
                    NAME,
                    format!("{v:?} is not a valid Matrix server name: {e}"),
                );
            }
            return (v, true);
        }
        let Some(origin) = origin else {
            return (String::new(), false);
        };
        (default_server_name(cloudron, origin, app_domain), false)
    }

    fn database(&mut self) -> Database {
        const URL: &str = "CLOUDRON_POSTGRESQL_URL";
        let url = self.secret(URL);
        let host = self.src.var("CLOUDRON_POSTGRESQL_HOST");
        if url.is_none() && host.is_none() {
            return Database::Sqlite;
        }
        let mut pg = Postgres {
            variable: if url.is_some() {
                URL
            } else {
                "CLOUDRON_POSTGRESQL_HOST"
            },
            host: String::new(),
            port: 5432,
            user: String::new(),
            password: String::new(),
            database: String::new(),
        };
        let problems_before = self.problems.len();
        if let Some(raw) = &url {
            match Url::parse(raw) {
                Ok(u)
                    if matches!(u.scheme(), "postgres" | "postgresql")
                        && u.host_str().is_some() =>
                {
                    let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
                    pg.host = u
                        .host_str()
                        .unwrap_or_default()
                        .trim_matches(['[', ']'])
                        .to_owned();
                    pg.port = u.port().unwrap_or(5432);
                    pg.user = decode(u.username());
                    pg.password = u.password().map(decode).unwrap_or_default();
                    pg.database = decode(u.path().trim_start_matches('/'));
                }
                // Never echo the URL: it carries the password.
                _ => self.problem(URL, "is not a postgres:// or postgresql:// URL with a host"),
            }
        }
        // The split variables win over the URL's parts when both are given.
        if let Some(h) = host {
            pg.host = h;
        }
        if let Some(p) = self.optional_port("CLOUDRON_POSTGRESQL_PORT") {
            pg.port = p;
        }
        if let Some(u) = self.src.var("CLOUDRON_POSTGRESQL_USERNAME") {
            pg.user = u;
        }
        if let Some(pw) = self.secret("CLOUDRON_POSTGRESQL_PASSWORD") {
            pg.password = pw;
        }
        if let Some(d) = self.src.var("CLOUDRON_POSTGRESQL_DATABASE") {
            pg.database = d;
        }
        if self.problems.len() > problems_before {
            return Database::Postgres(pg);
        }
        for (value, name) in [
            (&pg.host, "CLOUDRON_POSTGRESQL_HOST"),
            (&pg.user, "CLOUDRON_POSTGRESQL_USERNAME"),
            (&pg.database, "CLOUDRON_POSTGRESQL_DATABASE"),
        ] {
            if value.is_empty() {
                let name = if url.is_some() { URL } else { name };
                self.problem(
                    name,
                    "PostgreSQL settings are incomplete: host, user and database are required",
                );
                break;
            }
        }
        Database::Postgres(pg)
    }

    fn synapse_python(&mut self, cwd: &Path) -> Option<PathBuf> {
        const NAME: &str = "APPLIANCE_SYNAPSE_PYTHON";
        if let Some(p) = self.src.var(NAME) {
            let path = cwd.join(p);
            if !path.exists() {
                self.problem(NAME, format!("{} does not exist", path.display()));
                return None;
            }
            return Some(path);
        }
        crate::paths::default_synapse_python()
    }
}

/// Decodes `%XX` escapes (URL user info and path parts; RFC 3986 §2.1: `%` and two hex digits,
/// anything else stays as it is); `None` when the result is not valid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests;
