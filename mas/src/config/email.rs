//! `email`: outgoing mail (verification codes, password recovery). Upstream's flat layout:
//! `transport` picks the mailer and the SMTP or sendmail keys sit next to it.

use serde::{Deserialize, Serialize};

use super::{Problems, REDACTED};

/// The `email` section. `Debug` shows `<redacted>` for the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Sender mailbox, e.g. `"Matrix" <noreply@example.com>`.
    pub from: String,
    /// Reply-To mailbox.
    pub reply_to: String,
    /// How mail leaves: `blackhole` (sends nothing), `smtp` or `sendmail`.
    pub transport: EmailTransport,
    /// SMTP: `plain`, `tls` (implicit TLS) or `starttls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<SmtpMode>,
    /// SMTP: server host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SMTP: server port (default: by mode, 25, 465 or 587).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// SMTP: user name, with `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP: password, with `username`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// SMTP with `tls` or `starttls`: accept any certificate and host name (our extension,
    /// for a relay on an internal network with a self-signed certificate; default false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accept_invalid_certs: bool,
    /// sendmail: the command (default `sendmail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            from,
            reply_to,
            transport,
            mode,
            hostname,
            port,
            username,
            password,
            accept_invalid_certs,
            command,
        } = self;
        f.debug_struct("EmailConfig")
            .field("from", from)
            .field("reply_to", reply_to)
            .field("transport", transport)
            .field("mode", mode)
            .field("hostname", hostname)
            .field("port", port)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| REDACTED))
            .field("accept_invalid_certs", accept_invalid_certs)
            .field("command", command)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        let mailbox = r#""Authentication Service" <root@localhost>"#.to_owned();
        Self {
            from: mailbox.clone(),
            reply_to: mailbox,
            transport: EmailTransport::Blackhole,
            mode: None,
            hostname: None,
            port: None,
            username: None,
            password: None,
            accept_invalid_certs: false,
            command: None,
        }
    }
}

/// The mail transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransport {
    /// Send nothing.
    Blackhole,
    /// An SMTP server.
    Smtp,
    /// A local sendmail binary.
    Sendmail,
}

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpMode {
    /// No encryption.
    Plain,
    /// Implicit TLS.
    Tls,
    /// STARTTLS upgrade.
    Starttls,
}

impl EmailConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        for (key, mailbox) in [("from", &self.from), ("reply_to", &self.reply_to)] {
            if !mailbox.contains('@') {
                problems.push(format!("email.{key}"), "must be a mailbox (name@host)");
            }
        }
        let smtp_keys = [
            ("mode", self.mode.is_some()),
            ("hostname", self.hostname.is_some()),
            ("port", self.port.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("accept_invalid_certs", self.accept_invalid_certs),
        ];
        if self.transport == EmailTransport::Smtp {
            if self.mode.is_none() {
                problems.push("email.mode", "required with transport smtp");
            }
            if self.hostname.is_none() {
                problems.push("email.hostname", "required with transport smtp");
            }
            if self.username.is_some() != self.password.is_some() {
                problems.push("email.username", "set username and password together");
            }
        } else {
            for (key, set) in smtp_keys {
                if set {
                    problems.push(format!("email.{key}"), "only applies to transport smtp");
                }
            }
        }
        if self.command.is_some() && self.transport != EmailTransport::Sendmail {
            problems.push("email.command", "only applies to transport sendmail");
        }
    }

    pub(crate) fn redact(&mut self) {
        if self.password.is_some() {
            self.password = Some(REDACTED.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_smtp_password() {
        let config = EmailConfig {
            transport: EmailTransport::Smtp,
            hostname: Some("mail.example.com".to_owned()),
            username: Some("matrix".to_owned()),
            password: Some("smtp-s3cret".to_owned()),
            ..EmailConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("smtp-s3cret"), "{debug}");
        assert!(debug.contains("mail.example.com"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
