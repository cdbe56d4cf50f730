//! Browser sessions: what the session cookie points at, and how their user authenticated.

use ulid::Ulid;

use super::User;

/// A browser session with its user (loaded together: every human page needs both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// The row id (what the session cookie holds).
    pub id: Ulid,
    /// Whose session it is.
    pub user: User,
    /// When it started.
    pub created_at: i64,
    /// When it ended (logout); `None` while active.
    pub finished_at: Option<i64>,
    /// The browser's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// Last recorded activity.
    pub last_active_at: Option<i64>,
    /// The IP address of the last recorded activity.
    pub last_active_ip: Option<String>,
}

impl BrowserSession {
    /// Not finished.
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// How the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticationMethod {
    /// With this password (row of `user_passwords`).
    Password {
        /// The password row that matched.
        user_password_id: Ulid,
    },
    /// Through an upstream OpenID provider.
    Upstream {
        /// The upstream authorization session.
        upstream_oauth_authorization_session_id: Ulid,
    },
}

/// One successful authentication in a browser session; the newest gives `auth_time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The row id.
    pub id: Ulid,
    /// The browser session it happened in.
    pub user_session_id: Ulid,
    /// When (the ID token's `auth_time`, in milliseconds).
    pub created_at: i64,
    /// How.
    pub method: AuthenticationMethod,
}
