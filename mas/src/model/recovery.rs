//! Password recovery (migration 0017): a request for an address and the single-use tickets
//! mailed for it, one per account that has the address verified.

use ulid::Ulid;

/// How long a recovery ticket works: one hour.
pub const RECOVERY_TICKET_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// A request for a recovery link (`POST /recover`), whether or not an account has the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverySession {
    /// The row id.
    pub id: Ulid,
    /// The address asked for, normalized.
    pub email: String,
    /// The client address of the request.
    pub ip_address: Option<String>,
    /// The browser's `User-Agent`.
    pub user_agent: Option<String>,
    /// When it was asked for.
    pub created_at: i64,
    /// When one of its tickets set a password.
    pub consumed_at: Option<i64>,
}

/// One mailed link: it sets the password of `user_id`, once, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryTicket {
    /// The row id.
    pub id: Ulid,
    /// The request it answers.
    pub session_id: Ulid,
    /// The verified address it was mailed to.
    pub user_email_id: Ulid,
    /// Whose password it sets.
    pub user_id: Ulid,
    /// SHA-256 hex of the ticket (the ticket itself is never stored).
    pub ticket_sha256: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
    /// When it set a password.
    pub used_at: Option<i64>,
}

impl RecoveryTicket {
    /// Whether it may still set a password at `now`: unused and unexpired.
    pub fn is_usable(&self, now: i64) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_until_it_expires() {
        let ticket = RecoveryTicket {
            id: Ulid::nil(),
            session_id: Ulid::nil(),
            user_email_id: Ulid::nil(),
            user_id: Ulid::nil(),
            ticket_sha256: String::new(),
            created_at: 0,
            expires_at: RECOVERY_TICKET_LIFETIME_MS,
            used_at: None,
        };
        assert!(ticket.is_usable(RECOVERY_TICKET_LIFETIME_MS - 1));
        assert!(!ticket.is_usable(RECOVERY_TICKET_LIFETIME_MS));
        let used = RecoveryTicket {
            used_at: Some(1),
            ..ticket
        };
        assert!(!used.is_usable(2));
    }
}
