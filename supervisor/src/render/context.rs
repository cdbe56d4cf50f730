//! The values the config templates see: one flat, serializable view of the environment.

use serde::Serialize;

use crate::env::{AccountPolicy, Database, Env, Oidc, Registration};
use crate::paths::{Layout, PEPPER_FILE, share_dir};
use crate::state::SynapseImport;

/// Template context for `templates/config/*`.
#[derive(Debug, Serialize)]
pub struct Context {
    pub server_name: String,
    /// Public origin without trailing slash.
    pub origin: String,
    /// MAS public base and issuer: `ORIGIN/auth/`.
    pub public_base: String,
    pub app_domain: String,
    pub data_dir: String,
    pub run_dir: String,
    pub synapse_dir: String,
    pub mas_dir: String,
    pub secrets_dir: String,
    pub share_dir: String,
    pub synapse_port: u16,
    pub mas_port: u16,
    pub password_login: bool,
    pub log_level: &'static str,
    pub database: DatabaseContext,
    pub turn: Option<TurnContext>,
    pub mail: Option<MailContext>,
    /// The platform's OIDC provider, rendered as MAS's first upstream provider.
    pub oidc: Option<OidcContext>,
    /// Absolute paths of the checked appservice registrations, for Synapse's
    /// `app_service_config_files` (filled in by `render`, which reads the directory).
    pub appservice_files: Vec<String>,
    /// Set once users were taken over from an earlier Synapse: their bcrypt hashes stay
    /// verifiable (filled in by `render` from the pinned state).
    pub synapse_import: Option<SynapseImportContext>,
    /// MAS's `account.*` keys (registration, recovery), from `APPLIANCE_REGISTRATION`, mail and
    /// password login.
    pub account: AccountPolicy,
    /// `APPLIANCE_TERMS_URL`, as MAS's `branding.tos_uri`.
    pub terms_url: Option<String>,
    /// Kept to recompute `account` when a takeover turns password login on.
    #[serde(skip)]
    registration: Registration,
}

/// The password scheme of a Synapse that was taken over.
#[derive(Debug, Serialize)]
pub struct SynapseImportContext {
    /// `<secrets>/synapse_password_pepper`, when the old Synapse had a pepper.
    pub pepper_file: Option<String>,
}

#[derive(Serialize)]
pub struct DatabaseContext {
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub name: String,
    pub url: String,
}

impl std::fmt::Debug for DatabaseContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of debug output, like `env::Postgres`'s.
        f.debug_struct("DatabaseContext")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("name", &self.name)
            .field("url", &masked_url(&self.url))
            .finish()
    }
}

/// `url` with its password (if any) replaced by `<redacted>`; an unparsable URL entirely.
fn masked_url(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return "<redacted>".to_owned();
    };
    match parsed.password() {
        None => parsed.to_string(),
        Some(password) => {
            // The serialized URL holds the password once, percent-encoded, between the
            // user's `:` and the `@`.
            let serialized = parsed.to_string();
            serialized.replacen(&format!(":{password}@"), ":<redacted>@", 1)
        }
    }
}

#[derive(Serialize)]
pub struct TurnContext {
    pub server: String,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub secret: String,
}

impl std::fmt::Debug for TurnContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TURN shared secret stays out of debug output, like `env::Turn`'s.
        f.debug_struct("TurnContext")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize)]
pub struct MailContext {
    pub server: String,
    /// The plain SMTP port when given (the platform disables TLS on it), else the SMTPS port.
    pub port: u16,
    pub implicit_tls: bool,
    /// MAS `email.mode`: `plain` or `tls`.
    pub mode: &'static str,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `"Display Name" <from@example.com>`, or the bare address.
    pub from_header: String,
}

impl std::fmt::Debug for MailContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay password stays out of debug output, like `env::Mail`'s.
        f.debug_struct("MailContext")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("mode", &self.mode)
            .field("username", &self.username)
            .field("from_header", &self.from_header)
            .finish_non_exhaustive()
    }
}

/// The platform's OIDC provider (`CLOUDRON_OIDC_*`), as `upstream_oauth2.providers[0]`.
#[derive(Serialize)]
pub struct OidcContext {
    /// Always [`CLOUDRON_PROVIDER_ID`](super::CLOUDRON_PROVIDER_ID).
    pub id: &'static str,
    pub issuer: String,
    pub human_name: String,
    pub client_id: String,
    pub client_secret: String,
    /// Explicit endpoints: they override discovered ones, and stand in when discovery fails.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    /// Synapse's auth provider id of the old OIDC provider whose users this one takes over.
    pub synapse_idp_id: Option<String>,
}

impl std::fmt::Debug for OidcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcContext")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcContext {
    fn new(oidc: &Oidc) -> Self {
        OidcContext {
            id: super::CLOUDRON_PROVIDER_ID,
            issuer: oidc.issuer.clone(),
            human_name: oidc.provider_name.clone(),
            client_id: oidc.client_id.clone(),
            client_secret: oidc.client_secret.clone(),
            authorization_endpoint: oidc.auth_endpoint.clone(),
            token_endpoint: oidc.token_endpoint.clone(),
            userinfo_endpoint: oidc.profile_endpoint.clone(),
            jwks_uri: oidc.keys_endpoint.clone(),
            synapse_idp_id: None,
        }
    }
}

impl Context {
    /// Applies what was decided when an earlier Synapse was taken over: the bcrypt scheme (with
    /// the pepper when there is one), password login kept on unless `APPLIANCE_PASSWORD_LOGIN`
    /// says otherwise, and the old OIDC provider's id on the platform provider.
    pub fn apply_import(&mut self, env: &Env, layout: &Layout, import: &SynapseImport) {
        let pepper = layout.secret(PEPPER_FILE);
        self.synapse_import = Some(SynapseImportContext {
            pepper_file: pepper.exists().then(|| pepper.display().to_string()),
        });
        if import.password_login && !env.password_login_explicit {
            self.password_login = true;
            self.account = AccountPolicy::new(self.registration, self.mail.is_some(), true);
        }
        if let Some(oidc) = &mut self.oidc {
            oidc.synapse_idp_id.clone_from(&import.synapse_idp_id);
        }
    }

    pub fn new(env: &Env, layout: &Layout, server_name: &str) -> Self {
        let path = |p: std::path::PathBuf| p.display().to_string();
        let database = match &env.database {
            Database::Sqlite => DatabaseContext {
                kind: "sqlite",
                host: String::new(),
                port: 0,
                user: String::new(),
                password: String::new(),
                name: String::new(),
                url: String::new(),
            },
            Database::Postgres(pg) => DatabaseContext {
                kind: "postgres",
                host: pg.host.clone(),
                port: pg.port,
                user: pg.user.clone(),
                password: pg.password.clone(),
                name: pg.database.clone(),
                url: pg.url(),
            },
        };
        let turn = env.turn.as_ref().map(|t| TurnContext {
            server: t.server.clone(),
            port: t.port,
            tls_port: t.tls_port,
            secret: t.secret.clone(),
        });
        let mail = env.mail.as_ref().map(|m| {
            // Cloudron's `sendmail` addon: the plain port has TLS disabled and is the relay's main
            // door; SMTPS only when no plain port is given.
            let (port, implicit_tls) = match (m.smtp_port, m.smtps_port) {
                (Some(p), _) => (p, false),
                (None, Some(p)) => (p, true),
                (None, None) => (25, false),
            };
            let from_header = match &m.from_display_name {
                // Quotes, backslashes and control characters (a line break would start a
                // header of its own) cannot be in the quoted display name.
                Some(name) => format!(
                    "\"{}\" <{}>",
                    name.replace(|c: char| c == '"' || c == '\\' || c.is_control(), ""),
                    m.from
                ),
                None => m.from.clone(),
            };
            MailContext {
                server: m.server.clone(),
                port,
                implicit_tls,
                mode: if implicit_tls { "tls" } else { "plain" },
                username: m.username.clone(),
                password: m.password.clone(),
                from_header,
            }
        });
        let origin = env.origin_str();
        Context {
            server_name: server_name.to_owned(),
            public_base: format!("{origin}/auth/"),
            origin,
            app_domain: env.app_domain.clone(),
            data_dir: path(layout.data.clone()),
            run_dir: path(layout.run.clone()),
            synapse_dir: path(layout.synapse_dir()),
            mas_dir: path(layout.mas_dir()),
            secrets_dir: path(layout.secrets_dir()),
            share_dir: path(share_dir()),
            synapse_port: env.synapse_port,
            mas_port: env.mas_port,
            password_login: env.password_login,
            log_level: "INFO",
            database,
            turn,
            mail,
            oidc: env.oidc.as_ref().map(OidcContext::new),
            appservice_files: Vec::new(),
            synapse_import: None,
            account: env.account_policy(env.password_login),
            terms_url: env.terms_url.as_ref().map(ToString::to_string),
            registration: env.registration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_context_debug_hides_the_password() {
        let context = DatabaseContext {
            kind: "postgres",
            host: "postgres".to_owned(),
            port: 5432,
            user: "matrix".to_owned(),
            password: "pg s3cret/@:x".to_owned(),
            name: "db".to_owned(),
            url: "postgresql://matrix:pg%20s3cret%2F%40%3Ax@postgres:5432/db".to_owned(),
        };
        let debug = format!("{context:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(
            debug.contains("postgresql://matrix:<redacted>@postgres:5432/db"),
            "{debug}"
        );
        assert!(debug.contains("password: \"<redacted>\""), "{debug}");
    }

    #[test]
    fn database_urls_without_a_password_are_shown_whole() {
        assert_eq!(
            masked_url("postgresql://matrix@postgres:5432/db"),
            "postgresql://matrix@postgres:5432/db"
        );
        assert_eq!(masked_url("not a url s3cret"), "<redacted>");
        assert_eq!(masked_url(""), "");
    }

    #[test]
    fn turn_context_debug_hides_the_secret() {
        let context = TurnContext {
            server: "turn.example.com".to_owned(),
            port: 3478,
            tls_port: Some(5349),
            secret: "turn-s3cret".to_owned(),
        };
        let debug = format!("{context:?}");
        assert!(!debug.contains("turn-s3cret"), "{debug}");
        assert!(debug.contains("turn.example.com"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
