//! Self-service accounts: `APPLIANCE_REGISTRATION` and `APPLIANCE_TERMS_URL`, and the account
//! policy they make together with mail and password login (README "Configuration"). The policy
//! is rendered into mas.yaml's `account:` section (upstream MAS's keys), shown on the front page
//! and by `appliance doctor`.

use std::fmt;

use url::Url;

use super::Parser;

/// `APPLIANCE_REGISTRATION`: who may create an account with a password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Registration {
    /// Nobody: accounts come from the admin (`manage register-user`) or the platform's sign-on.
    #[default]
    Off,
    /// Whoever has a registration token (`manage issue-user-registration-token`).
    Token,
    /// Anyone; with mail off a token is still needed (nothing else keeps bots out).
    Open,
}

impl Registration {
    /// The variable's spelling of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Off => "off",
            Registration::Token => "token",
            Registration::Open => "open",
        }
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What people may do with accounts of their own, decided from the environment. The fields are
/// upstream MAS's `account.*` keys of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AccountPolicy {
    /// `account.password_registration_enabled`.
    pub password_registration_enabled: bool,
    /// `account.password_registration_token_required`.
    pub password_registration_token_required: bool,
    /// `account.password_registration_email_required`.
    pub password_registration_email_required: bool,
    /// `account.password_recovery_enabled`.
    pub password_recovery_enabled: bool,
}

impl AccountPolicy {
    /// The policy for `registration`, with mail on or off and password login on or off.
    ///
    /// Registration needs password login (the env check refuses it otherwise; with the import
    /// of an earlier Synapse's password login it may be on anyway). With mail off an email
    /// cannot be verified, so open registration falls back to needing a token; recovery needs
    /// both mail and passwords.
    pub fn new(registration: Registration, mail: bool, password_login: bool) -> Self {
        let enabled = registration != Registration::Off && password_login;
        AccountPolicy {
            password_registration_enabled: enabled,
            password_registration_token_required: enabled
                && (registration == Registration::Token || !mail),
            password_registration_email_required: mail,
            password_recovery_enabled: mail && password_login,
        }
    }

    /// `open` registration that needs a token anyway because mail is off.
    pub fn open_needs_token(registration: Registration, mail: bool) -> bool {
        registration == Registration::Open && !mail
    }
}

impl Parser<'_> {
    pub(super) fn registration(&mut self) -> Registration {
        self.parse_with("APPLIANCE_REGISTRATION", "off, token or open", |v| match v
            .to_ascii_lowercase()
            .as_str()
        {
            "off" => Some(Registration::Off),
            "token" => Some(Registration::Token),
            "open" => Some(Registration::Open),
            _ => None,
        })
        .unwrap_or_default()
    }

    /// An absolute http(s) URL with a host, no credentials.
    pub(super) fn terms_url(&mut self) -> Option<Url> {
        const NAME: &str = "APPLIANCE_TERMS_URL";
        let raw = self.src.var(NAME)?;
        match Url::parse(raw.trim()) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.username().is_empty()
                    && url.password().is_none() =>
            {
                Some(url)
            }
            Ok(_) => {
                self.problem(
                    NAME,
                    format!("{raw:?} must be an http:// or https:// URL with a host"),
                );
                None
            }
            Err(e) => {
                self.problem(NAME, format!("{raw:?} is not a valid URL ({e})"));
                None
            }
        }
    }

    /// Registration makes password accounts: it cannot be on when password login is off.
    pub(super) fn registration_needs_passwords(
        &mut self,
        registration: Registration,
        password_login: bool,
        password_login_explicit: bool,
    ) {
        if registration == Registration::Off || password_login {
            return;
        }
        let why = if password_login_explicit {
            "APPLIANCE_PASSWORD_LOGIN=false"
        } else {
            "the platform's single sign-on turns password login off unless \
             APPLIANCE_PASSWORD_LOGIN=true"
        };
        self.problem(
            "APPLIANCE_REGISTRATION",
            format!(
                "{registration:?} needs password login, but it is off ({why}); set \
                 APPLIANCE_REGISTRATION=off or APPLIANCE_PASSWORD_LOGIN=true",
                registration = registration.as_str()
            ),
        );
    }
}
