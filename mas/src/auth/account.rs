//! Whether an account may log in at all, asked by every way in (a password, a login token, an
//! upstream provider) once it knows who is logging in.

use crate::model::User;

/// Why an account may not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AccountRefusal {
    /// The account was deactivated.
    #[error("the account is deactivated")]
    Deactivated,
    /// An administrator locked the account.
    #[error("the account is locked")]
    Locked,
    /// Guest accounts only exist in the homeserver.
    #[error("guest accounts cannot log in here")]
    Guest,
}

/// Deactivated, then locked, then guest: the first that applies refuses the login.
pub(crate) fn check_account(user: &User) -> Result<(), AccountRefusal> {
    if user.deactivated_at.is_some() {
        return Err(AccountRefusal::Deactivated);
    }
    if user.locked_at.is_some() {
        return Err(AccountRefusal::Locked);
    }
    if user.is_guest {
        return Err(AccountRefusal::Guest);
    }
    Ok(())
}
