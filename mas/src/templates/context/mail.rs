//! The mail people receive (docs/protocol.md#mail): each message has a subject, a plain-text
//! and an HTML template under `emails/`, rendered from one context. Links point at the public
//! origin; nothing is loaded from elsewhere (no images, no tracking).

use serde::Serialize;

/// The code that proves an address (registration, adding an address).
#[derive(Debug, Clone, Serialize)]
pub struct VerificationMail {
    /// The Matrix server name (in the subject and the text).
    pub server_name: String,
    /// The address the code goes to.
    pub email: String,
    /// The code, digits only.
    pub code: String,
    /// Minutes the code stays valid.
    pub valid_minutes: i64,
    /// True for a new account, false for an address added to one.
    pub for_registration: bool,
    /// The public base of the account pages (`https://example.com/auth/`).
    pub base_url: String,
}

impl VerificationMail {
    /// A registration code.
    pub fn sample() -> Self {
        Self {
            server_name: "example.com".to_owned(),
            email: "alice@example.com".to_owned(),
            code: "123456".to_owned(),
            valid_minutes: 15,
            for_registration: true,
            base_url: "https://example.com/auth/".to_owned(),
        }
    }
}

/// A password recovery link, one per account that has the address verified.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryMail {
    /// The Matrix server name (in the subject and the text).
    pub server_name: String,
    /// The address the link goes to.
    pub email: String,
    /// The account's Matrix ID.
    pub mxid: String,
    /// The link (`https://example.com/auth/recover/complete?ticket=…`).
    pub link: String,
    /// Minutes the link stays valid.
    pub valid_minutes: i64,
    /// The public base of the account pages (`https://example.com/auth/`).
    pub base_url: String,
}

impl RecoveryMail {
    /// Alice's link.
    pub fn sample() -> Self {
        Self {
            server_name: "example.com".to_owned(),
            email: "alice@example.com".to_owned(),
            mxid: "@alice:example.com".to_owned(),
            link: "https://example.com/auth/recover/complete?ticket=sample".to_owned(),
            valid_minutes: 60,
            base_url: "https://example.com/auth/".to_owned(),
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The subject line (one line, trimmed).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}
