//! The optional platform services: the OIDC provider, outgoing mail and TURN. Each is all or
//! nothing: a partial set of variables is a problem naming the missing ones.

use std::fmt;

use url::Url;

use super::Parser;

/// The platform's OIDC provider (MAS's upstream provider).
#[derive(Clone, PartialEq, Eq)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub provider_name: String,
    pub discovery_url: Option<String>,
    pub auth_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub keys_endpoint: Option<String>,
    pub profile_endpoint: Option<String>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("provider_name", &self.provider_name)
            .finish_non_exhaustive()
    }
}

/// Outgoing mail through the platform's relay.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub server: String,
    pub smtp_port: Option<u16>,
    pub smtps_port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub from_display_name: Option<String>,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("server", &self.server)
            .field("smtp_port", &self.smtp_port)
            .field("smtps_port", &self.smtps_port)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The platform's TURN server, for calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Turn {
    pub server: String,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub secret: String,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .finish_non_exhaustive()
    }
}

impl Parser<'_> {
    pub(super) fn oidc(&mut self) -> Option<Oidc> {
        let issuer = self.src.var("CLOUDRON_OIDC_ISSUER");
        let client_id = self.src.var("CLOUDRON_OIDC_CLIENT_ID");
        let client_secret = self.secret("CLOUDRON_OIDC_CLIENT_SECRET");
        if issuer.is_none() && client_id.is_none() && client_secret.is_none() {
            return None;
        }
        let mut missing = Vec::new();
        if issuer.is_none() {
            missing.push("CLOUDRON_OIDC_ISSUER");
        }
        if client_id.is_none() {
            missing.push("CLOUDRON_OIDC_CLIENT_ID");
        }
        if client_secret.is_none() {
            missing.push("CLOUDRON_OIDC_CLIENT_SECRET");
        }
        for name in &missing {
            self.problem(
                name,
                "must be set together with the other CLOUDRON_OIDC_* variables",
            );
        }
        let mut url_var = |name: &str| {
            self.parse_with(name, "an http(s) URL", |v| {
                Url::parse(v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .map(|_| v.to_owned())
            })
        };
        let issuer_ok = url_var("CLOUDRON_OIDC_ISSUER");
        let discovery_url = url_var("CLOUDRON_OIDC_DISCOVERY_URL");
        let auth_endpoint = url_var("CLOUDRON_OIDC_AUTH_ENDPOINT");
        let token_endpoint = url_var("CLOUDRON_OIDC_TOKEN_ENDPOINT");
        let keys_endpoint = url_var("CLOUDRON_OIDC_KEYS_ENDPOINT");
        let profile_endpoint = url_var("CLOUDRON_OIDC_PROFILE_ENDPOINT");
        if !missing.is_empty() || issuer_ok.is_none() {
            return None;
        }
        Some(Oidc {
            issuer: issuer.unwrap_or_default(),
            client_id: client_id.unwrap_or_default(),
            client_secret: client_secret.unwrap_or_default(),
            provider_name: self
                .src
                .var("CLOUDRON_OIDC_PROVIDER_NAME")
                .unwrap_or_else(|| "Single sign-on".to_owned()),
            discovery_url,
            auth_endpoint,
            token_endpoint,
            keys_endpoint,
            profile_endpoint,
        })
    }

    pub(super) fn mail(&mut self) -> Option<Mail> {
        let server = self.src.var("CLOUDRON_MAIL_SMTP_SERVER");
        let smtp_port = self.optional_port("CLOUDRON_MAIL_SMTP_PORT");
        let smtps_port = self.optional_port("CLOUDRON_MAIL_SMTPS_PORT");
        let from = self.src.var("CLOUDRON_MAIL_FROM");
        let username = self.src.var("CLOUDRON_MAIL_SMTP_USERNAME");
        let password = self.secret("CLOUDRON_MAIL_SMTP_PASSWORD");
        let server = server?;
        if smtp_port.is_none() && smtps_port.is_none() {
            self.problem(
                "CLOUDRON_MAIL_SMTP_PORT",
                "set CLOUDRON_MAIL_SMTP_PORT or CLOUDRON_MAIL_SMTPS_PORT with CLOUDRON_MAIL_SMTP_SERVER",
            );
            return None;
        }
        let Some(from) = from else {
            self.problem(
                "CLOUDRON_MAIL_FROM",
                "must be set with CLOUDRON_MAIL_SMTP_SERVER",
            );
            return None;
        };
        if !from.contains('@') {
            self.problem(
                "CLOUDRON_MAIL_FROM",
                format!("{from:?} is not an email address"),
            );
            return None;
        }
        Some(Mail {
            server,
            smtp_port,
            smtps_port,
            username,
            password,
            from,
            from_display_name: self.src.var("CLOUDRON_MAIL_FROM_DISPLAY_NAME"),
        })
    }

    pub(super) fn turn(&mut self) -> Option<Turn> {
        let server = self.src.var("CLOUDRON_TURN_SERVER");
        let port = self.optional_port("CLOUDRON_TURN_PORT");
        let tls_port = self.optional_port("CLOUDRON_TURN_TLS_PORT");
        let secret = self.secret("CLOUDRON_TURN_SECRET");
        let server = server?;
        let Some(secret) = secret else {
            self.problem(
                "CLOUDRON_TURN_SECRET",
                "must be set with CLOUDRON_TURN_SERVER",
            );
            return None;
        };
        Some(Turn {
            server,
            port: port.unwrap_or(3478),
            tls_port,
            secret,
        })
    }
}
