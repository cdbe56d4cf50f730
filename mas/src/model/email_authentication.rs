//! Email authentications (docs/protocol.md#email-verification): a 6-digit code mailed to an
//! address proves that whoever types it back reads the address. One belongs to a registration
//! in progress or to a signed-in user adding an address.

use std::fmt;

use ulid::Ulid;

/// How long a mailed code can be used: 15 minutes.
pub const EMAIL_CODE_LIFETIME_MS: i64 = 15 * 60 * 1000;

/// How many codes may be tried against one authentication, the right one included; then a new
/// code must be sent.
pub const EMAIL_CODE_MAX_ATTEMPTS: i32 = 5;

/// The number of digits of a code.
pub const EMAIL_CODE_DIGITS: usize = 6;

/// What an email authentication proves the address for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailAuthenticationPurpose {
    /// A registration in progress (no user yet).
    Registration {
        /// The `user_registrations` row.
        registration_id: Ulid,
    },
    /// A signed-in user adding the address to their account.
    AddEmail {
        /// The user.
        user_id: Ulid,
        /// The browser session that asked (only it may type the code).
        browser_session_id: Ulid,
    },
}

/// One mailed code and its state.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAuthentication {
    /// The row id.
    pub id: Ulid,
    /// What it is for.
    pub purpose: EmailAuthenticationPurpose,
    /// The address as given.
    pub email: String,
    /// The code (digits only). Never logged.
    pub code: String,
    /// When it was made.
    pub created_at: i64,
    /// When the code stops working.
    pub expires_at: i64,
    /// How many codes were tried.
    pub attempts: i32,
    /// When the right code was typed; `None` until then.
    pub completed_at: Option<i64>,
}

impl EmailAuthentication {
    /// Whether the code can no longer be used because of its age.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at
    }

    /// How many more codes may be tried.
    pub fn attempts_left(&self) -> i32 {
        (EMAIL_CODE_MAX_ATTEMPTS - self.attempts).max(0)
    }
}

impl fmt::Debug for EmailAuthentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailAuthentication")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("email", &self.email)
            .field("code", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("attempts", &self.attempts)
            .field("completed_at", &self.completed_at)
            .finish()
    }
}
