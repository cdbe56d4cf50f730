//! Outgoing mail: the [`Mailer`] built from the `email` config section
//! ([`Mailer::from_config`]).
//!
//! `smtp` talks to a relay in one of three modes: `plain` (no TLS at all: the platform's relay
//! disables it on its plain port), `tls` (implicit TLS, SMTPS) and `starttls`; `sendmail` pipes
//! the message into a local command; `blackhole` sends nothing and says so, so that a feature
//! that needs mail can tell the user instead of pretending. TLS is rustls with the webpki roots.
//! The password never appears in `Debug` output or logs.
//!
//! Used by `mas-cli doctor --send-test-email` and by the jobs that mail verification codes and
//! recovery links; message contents (the `emails/` templates) belong to their features, not
//! here. Tests use [`Mailer::memory`] and read what was sent from its [`Outbox`].

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tokio::io::AsyncWriteExt as _;

use crate::config::{EmailConfig, EmailTransport, SmtpMode};

/// How long one SMTP exchange (connect, each command) may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the sendmail command may take to accept a message (then it is killed).
const SENDMAIL_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_secs(2)
} else {
    Duration::from_secs(30)
};

/// Why mail could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `email.transport` is `blackhole`.
    #[error(
        "mail is not configured (email.transport is blackhole); on the appliance set \
         CLOUDRON_MAIL_SMTP_SERVER, CLOUDRON_MAIL_SMTP_PORT (or CLOUDRON_MAIL_SMTPS_PORT), \
         CLOUDRON_MAIL_FROM and, if the relay needs them, CLOUDRON_MAIL_SMTP_USERNAME and \
         CLOUDRON_MAIL_SMTP_PASSWORD"
    )]
    NotConfigured,
    /// A mailbox (`from`, `reply_to`, a recipient) does not parse.
    #[error("{what} {value:?} is not a valid mailbox: {source}")]
    Address {
        /// Which mailbox.
        what: &'static str,
        /// The text given.
        value: String,
        /// The parser's complaint.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The configuration cannot make a transport (missing host, bad TLS name).
    #[error("cannot set up mail: {0}")]
    Setup(String),
    /// The message could not be assembled.
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
    /// The SMTP server refused or the connection failed.
    #[error("SMTP delivery to {relay} failed: {source}")]
    Smtp {
        /// `host:port (mode)`.
        relay: String,
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The sendmail command failed.
    #[error("sendmail ({command}) failed: {message}")]
    Sendmail {
        /// The command.
        command: String,
        /// What went wrong.
        message: String,
    },
}

/// Where mail goes.
enum Transport {
    Blackhole,
    /// Kept in memory for tests to read ([`Outbox`]).
    Memory(Outbox),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        relay: String,
    },
    Sendmail {
        command: String,
    },
}

/// Sends mail through the configured transport.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    reply_to: Mailbox,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.describe())
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// The SMTP settings [`Mailer::smtp`] needs; the password stays out of `Debug`.
pub struct SmtpSettings<'a> {
    /// Relay host name.
    pub hostname: &'a str,
    /// Port; `None` picks the mode's default (25, 465, 587).
    pub port: Option<u16>,
    /// `plain`, `tls` or `starttls`.
    pub mode: SmtpMode,
    /// User name and password, when the relay wants them.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Accept any certificate (self-signed relays on an internal network).
    pub accept_invalid_certs: bool,
}

/// One message as the transports see it.
pub struct Outgoing {
    /// Recipient.
    pub to: Mailbox,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// The same as HTML, sent as the preferred alternative (`multipart/alternative`, RFC 2046
    /// §5.1.4), when there is one.
    pub html: Option<String>,
}

/// One message a memory mailer kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, if any.
    pub html: Option<String>,
}

/// What a memory mailer ([`Mailer::memory`]) sent; clones share the list.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    sent: std::sync::Arc<std::sync::Mutex<Vec<SentMail>>>,
}

impl Outbox {
    /// Every message sent so far, oldest first.
    pub fn messages(&self) -> Vec<SentMail> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The messages sent to `address`, oldest first.
    pub fn to(&self, address: &str) -> Vec<SentMail> {
        self.messages()
            .into_iter()
            .filter(|mail| mail.to.eq_ignore_ascii_case(address))
            .collect()
    }

    fn push(&self, mail: SentMail) {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(mail);
    }
}

/// Where a message went, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// `smtp://host:port (mode)` or `sendmail (command)`.
    pub via: String,
    /// The server's answer, when it gave one.
    pub response: Option<String>,
}

impl Mailer {
    /// The runtime mailer for a (validated) `email` section.
    pub fn from_config(config: &EmailConfig) -> Result<Self, MailError> {
        match config.transport {
            EmailTransport::Blackhole => Self::blackhole(&config.from, &config.reply_to),
            EmailTransport::Sendmail => Self::sendmail(
                config.command.as_deref().unwrap_or("sendmail"),
                &config.from,
                &config.reply_to,
            ),
            EmailTransport::Smtp => {
                let hostname = config.hostname.as_deref().ok_or_else(|| {
                    MailError::Setup("email.hostname is required with transport smtp".to_owned())
                })?;
                let mode = config.mode.ok_or_else(|| {
                    MailError::Setup("email.mode is required with transport smtp".to_owned())
                })?;
                let credentials = config.username.as_deref().zip(config.password.as_deref());
                let settings = SmtpSettings {
                    hostname,
                    port: config.port,
                    mode,
                    credentials,
                    accept_invalid_certs: config.accept_invalid_certs,
                };
                Self::smtp(&settings, &config.from, &config.reply_to)
            }
        }
    }

    /// A mailer that sends nothing.
    pub fn blackhole(from: &str, reply_to: &str) -> Result<Self, MailError> {
        Ok(Self {
            transport: Transport::Blackhole,
            from: mailbox("email.from", from)?,
            reply_to: mailbox("email.reply_to", reply_to)?,
        })
    }

    /// A mailer that keeps what it sends in memory, for tests.
    pub fn memory(from: &str) -> Result<(Self, Outbox), MailError> {
        let outbox = Outbox::default();
        let mailer = Self {
            transport: Transport::Memory(outbox.clone()),
            from: mailbox("email.from", from)?,
            reply_to: mailbox("email.reply_to", from)?,
        };
        Ok((mailer, outbox))
    }

    /// A mailer that talks to an SMTP relay.
    pub fn smtp(
        settings: &SmtpSettings<'_>,
        from: &str,
        reply_to: &str,
    ) -> Result<Self, MailError> {
        let port = settings.port.unwrap_or(match settings.mode {
            SmtpMode::Plain => 25,
            SmtpMode::Tls => 465,
            SmtpMode::Starttls => 587,
        });
        let tls = match settings.mode {
            SmtpMode::Plain => Tls::None,
            SmtpMode::Tls => Tls::Wrapper(tls_parameters(settings)?),
            SmtpMode::Starttls => Tls::Required(tls_parameters(settings)?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.hostname)
                .port(port)
                .tls(tls)
                .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = settings.credentials {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        let mode = match settings.mode {
            SmtpMode::Plain => "plain",
            SmtpMode::Tls => "tls",
            SmtpMode::Starttls => "starttls",
        };
        Ok(Self {
            transport: Transport::Smtp {
                transport: builder.build(),
                relay: format!("smtp://{}:{port} ({mode})", settings.hostname),
            },
            from: mailbox("email.from", from)?,
            reply_to: mailbox("email.reply_to", reply_to)?,
        })
    }

    /// A mailer that pipes messages into `command -t -i` (recipients from the headers).
    pub fn sendmail(command: &str, from: &str, reply_to: &str) -> Result<Self, MailError> {
        Ok(Self {
            transport: Transport::Sendmail {
                command: command.to_owned(),
            },
            from: mailbox("email.from", from)?,
            reply_to: mailbox("email.reply_to", reply_to)?,
        })
    }

    /// False for `blackhole`: features that need mail say so instead of sending.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.transport, Transport::Blackhole)
    }

    /// One line for logs and the operator: where mail goes (never a secret).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Blackhole => "blackhole (mail is off)".to_owned(),
            Transport::Memory(_) => "memory (tests)".to_owned(),
            Transport::Smtp { relay, .. } => relay.clone(),
            Transport::Sendmail { command } => format!("sendmail ({command})"),
        }
    }

    /// The sender mailbox.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one message: plain text, or text and HTML as alternatives.
    #[tracing::instrument(name = "email.send", skip_all, fields(via = %self.describe()), err)]
    pub async fn send(&self, outgoing: Outgoing) -> Result<Delivered, MailError> {
        if !self.is_enabled() {
            return Err(MailError::NotConfigured);
        }
        if let Transport::Memory(outbox) = &self.transport {
            outbox.push(SentMail {
                to: outgoing.to.email.to_string(),
                subject: outgoing.subject,
                text: outgoing.text,
                html: outgoing.html,
            });
            return Ok(Delivered {
                via: self.describe(),
                response: None,
            });
        }
        let builder = Message::builder()
            .from(self.from.clone())
            .reply_to(self.reply_to.clone())
            .to(outgoing.to)
            .subject(outgoing.subject);
        let message = match outgoing.html {
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(outgoing.text)?,
            Some(html) => {
                builder.multipart(MultiPart::alternative_plain_html(outgoing.text, html))?
            }
        };
        match &self.transport {
            Transport::Blackhole | Transport::Memory(_) => Err(MailError::NotConfigured),
            Transport::Smtp { transport, relay } => {
                let response = transport
                    .send(message)
                    .await
                    .map_err(|source| MailError::Smtp {
                        relay: relay.clone(),
                        source,
                    })?;
                Ok(Delivered {
                    via: relay.clone(),
                    response: Some(format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    )),
                })
            }
            Transport::Sendmail { command } => {
                sendmail(command, &message.formatted()).await?;
                Ok(Delivered {
                    via: format!("sendmail ({command})"),
                    response: None,
                })
            }
        }
    }

    /// Sends the message `mas-cli doctor --send-test-email` uses to prove delivery.
    pub async fn send_test(&self, to: &str, homeserver: &str) -> Result<Delivered, MailError> {
        let to = mailbox("recipient", to)?;
        self.send(Outgoing {
            to,
            subject: format!("Test email from the Matrix server {homeserver}"),
            text: format!(
                "This is a test email from the authentication service of the Matrix server \
                 {homeserver}.\n\nIf you can read it, outgoing mail works: verification codes \
                 and password recovery mail will reach your users.\n"
            ),
            html: None,
        })
        .await
    }
}

fn mailbox(what: &'static str, value: &str) -> Result<Mailbox, MailError> {
    value.parse().map_err(|source| MailError::Address {
        what,
        value: value.to_owned(),
        source,
    })
}

fn tls_parameters(settings: &SmtpSettings<'_>) -> Result<TlsParameters, MailError> {
    TlsParameters::builder(settings.hostname.to_owned())
        .dangerous_accept_invalid_certs(settings.accept_invalid_certs)
        .dangerous_accept_invalid_hostnames(settings.accept_invalid_certs)
        .build_rustls()
        .map_err(|e| MailError::Setup(format!("TLS for {}: {e}", settings.hostname)))
}

async fn sendmail(command: &str, message: &[u8]) -> Result<(), MailError> {
    let failed = |message: String| MailError::Sendmail {
        command: command.to_owned(),
        message,
    };
    let mut child = tokio::process::Command::new(command)
        .args(["-t", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    // A command that hangs (stuck relay, waiting on a terminal) is killed: the doctor and
    // the features that send mail never wait forever.
    let exchange = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(message).await?;
        }
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(SENDMAIL_TIMEOUT, exchange)
        .await
        .map_err(|_elapsed| {
            failed(format!(
                "no answer within {} s; killed",
                SENDMAIL_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests;
