//! Users and what belongs to them directly: password hashes and email addresses.

use std::fmt;

use ulid::Ulid;

/// A local Matrix account. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The row id; its text form is the OIDC `sub`.
    pub id: Ulid,
    /// The Matrix localpart.
    pub username: String,
    /// When it was created.
    pub created_at: i64,
    /// When it was locked (no login, tokens inactive); `None` if not locked.
    pub locked_at: Option<i64>,
    /// When it was deactivated; `None` if active.
    pub deactivated_at: Option<i64>,
    /// Whether it may be granted `urn:synapse:admin:*`.
    pub can_request_admin: bool,
    /// A guest imported from Synapse (gets no sessions).
    pub is_guest: bool,
}

impl User {
    /// Neither locked nor deactivated: may log in, and its tokens are active.
    pub fn is_valid(&self) -> bool {
        self.locked_at.is_none() && self.deactivated_at.is_none()
    }

    /// The OIDC subject: the id as 26 upper-case characters.
    pub fn sub(&self) -> String {
        self.id.to_string()
    }
}

/// One password hash of a user (append-only; the newest is the active one).
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    /// The row id.
    pub id: Ulid,
    /// Whose it is.
    pub user_id: Ulid,
    /// The PHC string (or imported bcrypt hash). Never logged.
    pub hashed_password: String,
    /// The hashing scheme (`passwords.schemes[].version`).
    pub version: u16,
    /// The hash this one replaced when it was upgraded to a newer scheme at login.
    pub upgraded_from_id: Option<Ulid>,
    /// When it was set.
    pub created_at: i64,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Password")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("hashed_password", &"<redacted>")
            .field("version", &self.version)
            .field("upgraded_from_id", &self.upgraded_from_id)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An email address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail {
    /// The row id.
    pub id: Ulid,
    /// Whose it is.
    pub user_id: Ulid,
    /// The address as given.
    pub email: String,
    /// When it was added.
    pub created_at: i64,
    /// When it was proven or declared verified; `None` while unverified.
    pub confirmed_at: Option<i64>,
}

/// The form emails are compared in: lower case.
pub fn normalize_email(email: &str) -> String {
    email.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_hides_the_hash() {
        let password = Password {
            id: Ulid::nil(),
            user_id: Ulid::nil(),
            hashed_password: "$argon2id$secret".to_owned(),
            version: 1,
            upgraded_from_id: None,
            created_at: 0,
        };
        assert!(!format!("{password:?}").contains("argon2id"));
    }

    #[test]
    fn locked_or_deactivated_users_are_not_valid() {
        let mut user = User {
            id: Ulid::nil(),
            username: "alice".to_owned(),
            created_at: 0,
            locked_at: None,
            deactivated_at: None,
            can_request_admin: false,
            is_guest: false,
        };
        assert!(user.is_valid());
        user.locked_at = Some(1);
        assert!(!user.is_valid());
        user.locked_at = None;
        user.deactivated_at = Some(1);
        assert!(!user.is_valid());
    }
}
