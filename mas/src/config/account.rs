//! `account`: what users may do with their own account. Upstream's names and defaults.

use serde::{Deserialize, Serialize};

/// The `account` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// Users may add and remove email addresses.
    pub email_change_allowed: bool,
    /// Users may change their display name.
    pub displayname_change_allowed: bool,
    /// Anyone may register an account with a password.
    pub password_registration_enabled: bool,
    /// Password registration needs a verified email address.
    pub password_registration_email_required: bool,
    /// Users may change their password.
    pub password_change_allowed: bool,
    /// Users may reset a forgotten password by email.
    pub password_recovery_enabled: bool,
    /// Users may deactivate their own account.
    pub account_deactivation_allowed: bool,
    /// Users may log in with an email address instead of a username.
    pub login_with_email_allowed: bool,
    /// Password registration needs a registration token.
    pub password_registration_token_required: bool,
    /// Deprecated alias of `password_registration_token_required`.
    pub registration_token_required: bool,
}

impl Default for AccountConfig {
    fn default() -> Self {
        Self {
            email_change_allowed: true,
            displayname_change_allowed: true,
            password_registration_enabled: false,
            password_registration_email_required: true,
            password_change_allowed: true,
            password_recovery_enabled: false,
            account_deactivation_allowed: true,
            login_with_email_allowed: false,
            password_registration_token_required: false,
            registration_token_required: false,
        }
    }
}

impl AccountConfig {
    /// Whether registration needs a token, under either spelling.
    pub fn registration_token_required(&self) -> bool {
        self.password_registration_token_required || self.registration_token_required
    }
}
