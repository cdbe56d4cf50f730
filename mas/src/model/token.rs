//! OAuth 2.0 access and refresh tokens. Only their SHA-256 is stored, so these types carry no
//! token text; the plaintext exists only in the response that hands it out.

use ulid::Ulid;

/// A stored access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The row id (introspection's `jti`).
    pub id: Ulid,
    /// The session it belongs to.
    pub session_id: Ulid,
    /// When it was issued.
    pub created_at: i64,
    /// When it expires; `None` for tokens that do not.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it was first introspected successfully.
    pub first_used_at: Option<i64>,
}

impl AccessToken {
    /// Not revoked and not expired at `now` (the session and user are checked separately).
    pub fn is_valid(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The row id.
    pub id: Ulid,
    /// The session it belongs to.
    pub session_id: Ulid,
    /// The access token issued with it.
    pub access_token_id: Option<Ulid>,
    /// When it was issued.
    pub created_at: i64,
    /// When it was used (rotated).
    pub consumed_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// The token that replaced it when it was used.
    pub next_refresh_token_id: Option<Ulid>,
}

impl RefreshToken {
    /// Neither used nor revoked.
    pub fn is_valid(&self) -> bool {
        self.consumed_at.is_none() && self.revoked_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_is_invalid_from_its_expiry_or_revocation() {
        let mut token = AccessToken {
            id: Ulid::nil(),
            session_id: Ulid::nil(),
            created_at: 0,
            expires_at: Some(300_000),
            revoked_at: None,
            first_used_at: None,
        };
        assert!(token.is_valid(299_999));
        assert!(!token.is_valid(300_000));
        token.expires_at = None;
        assert!(token.is_valid(i64::MAX));
        token.revoked_at = Some(1);
        assert!(!token.is_valid(2));
    }
}
