//! The page contexts: one `Serialize` struct per page, each with a `sample()` used by the load-time
//! check, the tests and template authors. Contexts hold ready-made strings: the public prefix
//! (`/auth`, for assets), form actions and links built by the handler from `routes.rs`, and the
//! CSRF token of the forms (docs/protocol.md#cookies-and-csrf).

mod account;
mod account_manage;
mod compat_sso;
mod consent;
mod device;
mod email_verify;
mod error;
mod form_post;
mod index;
mod login;
mod mail;
mod password;
mod register;
mod upstream_link;
mod upstream_resubmit;

use serde::{Serialize, Serializer};

pub use self::account::{AccountContext, CrossSigningResetContext, SessionEndContext, SessionView};
pub use self::account_manage::{AccountManageView, DeactivateContext, EmailView};
pub use self::compat_sso::CompatSsoContext;
pub use self::consent::{
    ClientView, ConsentContext, ScopeView, UserView, describe_scopes, device_id_of,
};
pub use self::device::{DeviceConsentContext, DeviceDoneContext, DeviceLinkContext, time_ago};
pub use self::email_verify::EmailVerifyContext;
pub use self::error::ErrorContext;
pub use self::form_post::{AuthorizeErrorView, FormPostContext, FormPostParam};
pub use self::index::IndexContext;
pub use self::login::{LoginContext, PostAuthAction, ProviderLink};
pub use self::mail::{RecoveryMail, RenderedMail, VerificationMail};
pub use self::password::{
    LinkView, NoticeContext, PasswordChangeContext, RecoverCompleteContext, RecoverContext,
    StrengthView,
};
pub use self::register::{RegisterContext, RegisterDisplayNameContext};
pub use self::upstream_link::UpstreamLinkContext;
pub use self::upstream_resubmit::UpstreamResubmitContext;

/// The prefix of the samples (the appliance's).
const SAMPLE_PREFIX: &str = "/auth";
/// A CSRF token of the samples.
const SAMPLE_CSRF: &str = "sample-csrf-token";

/// One problem with a submitted form: shown in the error summary at the top and, when it
/// concerns a field, next to that field (tied to it with `aria-describedby`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FormError {
    /// The field's `name`/`id` (`username`), or `None` for the whole form.
    pub field: Option<String>,
    /// What went wrong, in words for the user.
    pub message: String,
}

impl FormError {
    /// A problem with the whole form ("Invalid username or password").
    pub fn form(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    /// A problem with one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// Serializes a URL taken from a client's metadata only if it is `https://` or `http://`:
/// escaping does not stop a `javascript:` link, so such values are dropped here.
fn web_url<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    let safe = value.as_deref().filter(|url| is_web_url(url));
    safe.serialize(serializer)
}

fn is_web_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "https" | "http"))
}
