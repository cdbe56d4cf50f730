//! Self-service registration: registration tokens and registrations in progress
//! (docs/protocol.md#registration).

use ulid::Ulid;

/// A registration token issued by the operator (upstream MAS's `UserRegistrationToken`).
/// Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    /// The row id.
    pub id: Ulid,
    /// The token people type.
    pub token: String,
    /// How many registrations it may complete; `None`: no limit.
    pub usage_limit: Option<u64>,
    /// How many it completed.
    pub times_used: u64,
    /// When it was issued.
    pub created_at: i64,
    /// When it last completed a registration.
    pub last_used_at: Option<i64>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<i64>,
    /// When the operator revoked it.
    pub revoked_at: Option<i64>,
}

/// Whether a token can be used now, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationTokenState {
    /// It can complete a registration.
    Active,
    /// The operator revoked it.
    Revoked,
    /// Past its expiry.
    Expired,
    /// It completed as many registrations as its limit.
    UsedUp,
}

impl RegistrationTokenState {
    /// One lower-case word, for the CLI's table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::UsedUp => "used up",
        }
    }
}

impl RegistrationToken {
    /// Its state at `now`: revoked, then expired, then used up (the first that applies).
    pub fn state(&self, now: i64) -> RegistrationTokenState {
        if self.revoked_at.is_some() {
            RegistrationTokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            RegistrationTokenState::Expired
        } else if self
            .usage_limit
            .is_some_and(|limit| self.times_used >= limit)
        {
            RegistrationTokenState::UsedUp
        } else {
            RegistrationTokenState::Active
        }
    }
}

/// What the registration form stores (the password already hashed).
#[derive(Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// The chosen localpart.
    pub username: String,
    /// The address to verify, when registration requires one.
    pub email: Option<String>,
    /// The hash of the chosen password (PHC string). Never logged.
    pub hashed_password: String,
    /// The scheme version that made it.
    pub hashed_password_version: u16,
    /// The terms of service URL accepted.
    pub terms_url: Option<String>,
    /// The registration token given, when one is required.
    pub registration_token_id: Option<Ulid>,
    /// Where the browser continues afterwards, as JSON (`PostAuthAction::to_json`).
    pub post_auth_action: Option<serde_json::Value>,
    /// The client's address.
    pub ip_address: Option<String>,
    /// The browser's `User-Agent`.
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for NewRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRegistration")
            .field("username", &self.username)
            .field("hashed_password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A registration in progress or completed.
#[derive(Clone, PartialEq, Eq)]
pub struct Registration {
    /// The row id (in the page URLs).
    pub id: Ulid,
    /// What the form gave.
    pub new: NewRegistration,
    /// The display name chosen on the last step.
    pub display_name: Option<String>,
    /// When the form was submitted.
    pub created_at: i64,
    /// When the mailed code proved the address.
    pub email_verified_at: Option<i64>,
    /// When the account was created.
    pub completed_at: Option<i64>,
    /// The account created.
    pub user_id: Option<Ulid>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("new", &self.new)
            .field("completed_at", &self.completed_at)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Whether the address still has to be verified before the account may be created.
    pub fn needs_email_verification(&self) -> bool {
        self.new.email.is_some() && self.email_verified_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(limit: Option<u64>, used: u64) -> RegistrationToken {
        RegistrationToken {
            id: Ulid::nil(),
            token: "t".to_owned(),
            usage_limit: limit,
            times_used: used,
            created_at: 0,
            last_used_at: None,
            expires_at: Some(100),
            revoked_at: None,
        }
    }

    #[test]
    fn token_states_follow_revocation_expiry_and_uses() {
        assert_eq!(token(None, 5).state(99), RegistrationTokenState::Active);
        assert_eq!(token(Some(1), 0).state(99), RegistrationTokenState::Active);
        assert_eq!(token(Some(1), 1).state(99), RegistrationTokenState::UsedUp);
        assert_eq!(
            token(Some(1), 0).state(100),
            RegistrationTokenState::Expired
        );
        let mut revoked = token(Some(1), 1);
        revoked.revoked_at = Some(1);
        assert_eq!(revoked.state(100), RegistrationTokenState::Revoked);
    }
}
