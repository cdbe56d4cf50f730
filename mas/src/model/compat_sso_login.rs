//! Legacy Matrix SSO logins (docs/protocol.md#compat-layer): a `redirectUrl` waiting for a browser
//! session to approve it, then a one-time `loginToken` the client trades through `m.login.token`.

use ulid::Ulid;
use url::Url;

/// How long a fulfilled login's token may be exchanged: 30 s (docs/protocol.md#lifetimes).
pub const COMPAT_LOGIN_TOKEN_LIFETIME_MS: i64 = 30 * 1000;

/// One row of `compat_sso_logins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatSsoLogin {
    /// The row id (the `{id}` of `/complete-compat-sso/{id}`).
    pub id: Ulid,
    /// The client's `redirectUrl`.
    pub redirect_uri: Url,
    /// The browser session that approved it (set at fulfilment).
    pub user_session_id: Option<Ulid>,
    /// The compat session the token exchange created.
    pub compat_session_id: Option<Ulid>,
    /// When the client started it.
    pub created_at: i64,
    /// When the user approved it (the token's 30 s start then).
    pub fulfilled_at: Option<i64>,
    /// When the token was traded.
    pub exchanged_at: Option<i64>,
}

impl CompatSsoLogin {
    /// Waiting for the user: neither fulfilled nor exchanged.
    pub fn is_pending(&self) -> bool {
        self.fulfilled_at.is_none() && self.exchanged_at.is_none()
    }
}
