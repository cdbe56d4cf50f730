//! Compat (legacy Matrix `/login`) sessions and their tokens (docs/protocol.md#compat-layer and
//! docs/protocol.md#lifetimes). Only the tokens' SHA-256 is stored, so the token types carry no
//! token text.

use ulid::Ulid;

/// A stored compat session: one device of a user logged in through the legacy API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatSession {
    /// The row id.
    pub id: Ulid,
    /// The user.
    pub user_id: Ulid,
    /// The Matrix device id (client-chosen or 10 generated alphanumerics).
    pub device_id: String,
    /// The browser session of an SSO login, if any.
    pub user_session_id: Option<Ulid>,
    /// Whether its tokens carry `urn:synapse:admin:*` (CLI-issued admin tokens).
    pub is_synapse_admin: bool,
    /// When it was created.
    pub created_at: i64,
    /// When it ended (logout, replaced device); `None` while active.
    pub finished_at: Option<i64>,
    /// The `User-Agent` of the login request.
    pub user_agent: Option<String>,
    /// The device's display name (`initial_device_display_name`).
    pub human_name: Option<String>,
}

impl CompatSession {
    /// Not finished.
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// A stored compat access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatAccessToken {
    /// The row id.
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

impl CompatAccessToken {
    /// Not revoked and not expired at `now` (the session and user are checked separately).
    pub fn is_valid(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

/// A stored compat refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatRefreshToken {
    /// The row id.
    pub id: Ulid,
    /// The session it belongs to.
    pub session_id: Ulid,
    /// The access token issued with it.
    pub access_token_id: Ulid,
    /// When it was issued.
    pub created_at: i64,
    /// When it was used (`/refresh`).
    pub consumed_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

impl CompatRefreshToken {
    /// Neither used nor revoked.
    pub fn is_valid(&self) -> bool {
        self.consumed_at.is_none() && self.revoked_at.is_none()
    }
}
