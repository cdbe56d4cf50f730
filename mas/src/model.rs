//! The domain model: plain data types for what the storage layer reads and writes, free of
//! SQL. Ids are [`Ulid`](ulid::Ulid)s; times are Unix milliseconds (`i64`) from the injected
//! clock; scopes are [`Scope`]s. Behaviour that needs no I/O (is a token expired, is a client
//! public) lives here too.

mod browser_session;
mod client;
mod compat;
mod compat_sso_login;
mod device_grant;
mod email_authentication;
mod grant;
mod job;
mod recovery;
pub mod redirect_uri;
pub mod scope;
mod session;
mod token;
mod upstream;
mod user;

pub use self::browser_session::{Authentication, AuthenticationMethod, BrowserSession};
pub use self::client::{ApplicationType, Client, ClientAuthMethod, ClientMetadata, GrantTypes};
pub use self::compat::{CompatAccessToken, CompatRefreshToken, CompatSession};
pub use self::compat_sso_login::{COMPAT_LOGIN_TOKEN_LIFETIME_MS, CompatSsoLogin};
pub use self::device_grant::{
    DEVICE_CODE_LIFETIME_MS, DEVICE_CODE_MIN_POLL_GAP_MS, DEVICE_CODE_POLL_INTERVAL_SECS,
    DeviceGrant, DeviceGrantStage, NewDeviceGrant, display_user_code, normalize_user_code,
};
pub use self::email_authentication::{
    EMAIL_CODE_DIGITS, EMAIL_CODE_LIFETIME_MS, EMAIL_CODE_MAX_ATTEMPTS, EmailAuthentication,
    EmailAuthenticationPurpose,
};
pub use self::grant::{
    AUTHORIZATION_CODE_LIFETIME_MS, AuthorizationGrant, CodeChallenge, CodeChallengeMethod,
    GrantStage, NewAuthorizationGrant, ResponseMode, prompt_has,
};
pub use self::job::{Job, JobStatus, retry_delay};
pub use self::recovery::{RECOVERY_TICKET_LIFETIME_MS, RecoverySession, RecoveryTicket};
pub use self::scope::{Scope, ScopeToken};
pub use self::session::{NewSession, Session};
pub use self::token::{AccessToken, RefreshToken};
pub use self::upstream::{UpstreamCompletion, UpstreamLink, UpstreamSession};
pub use self::user::{Password, User, UserEmail, normalize_email};

/// A stored or received keyword that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// What was being parsed (`response_mode`).
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
}

/// A fieldless enum with one wire keyword per variant: `as_str`, `FromStr` (errors with
/// [`UnknownValue`]), `Display`, and serde as the keyword.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $kind:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The wire keyword.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::model::UnknownValue {
                        kind: $kind,
                        value: text.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use keyword_enum;
