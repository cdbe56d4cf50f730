//! OAuth 2.0 sessions: one per login of a client (for Matrix clients, one per device), created at
//! token exchange (docs/protocol.md#authorization-code-grant).

use ulid::Ulid;

use super::Scope;

/// What a new session is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The client.
    pub client_id: Ulid,
    /// The user; `None` for client_credentials sessions.
    pub user_id: Option<Ulid>,
    /// The browser session that consented, if any.
    pub user_session_id: Option<Ulid>,
    /// The granted scope.
    pub scope: Scope,
    /// The `User-Agent` of the request that created it.
    pub user_agent: Option<String>,
    /// A name given by the user.
    pub human_name: Option<String>,
}

/// A stored OAuth 2.0 session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The row id.
    pub id: Ulid,
    /// The client.
    pub client_id: Ulid,
    /// The user; `None` for client_credentials sessions.
    pub user_id: Option<Ulid>,
    /// The browser session that consented, if any.
    pub user_session_id: Option<Ulid>,
    /// The granted scope.
    pub scope: Scope,
    /// When it was created.
    pub created_at: i64,
    /// When it ended (revocation, logout, deactivation); `None` while active.
    pub finished_at: Option<i64>,
    /// The `User-Agent` of the request that created it.
    pub user_agent: Option<String>,
    /// Last recorded activity.
    pub last_active_at: Option<i64>,
    /// The IP address of the last recorded activity.
    pub last_active_ip: Option<String>,
    /// A name given by the user.
    pub human_name: Option<String>,
}

impl Session {
    /// Not finished.
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}
