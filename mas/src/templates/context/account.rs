//! The account pages (`GET /account/` and its MSC4191 deep links; docs/protocol.md#pages): the main
//! page, the confirmation of ending a device's session, and the cross-signing reset.

use serde::Serialize;

use super::{AccountManageView, SAMPLE_CSRF, SAMPLE_PREFIX, UserView};

/// One active session of the user, with its sign-out form.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The application: the OAuth client's name, or the device name of a legacy login.
    pub name: String,
    /// Whether it is a legacy (`/_matrix/client/v3/login`) session.
    pub legacy: bool,
    /// The Matrix device ID, if it has one.
    pub device_id: Option<String>,
    /// When it started (`2026-01-02 03:04 UTC`).
    pub created_at: String,
    /// When it was last used, if known.
    pub last_active_at: Option<String>,
    /// Where its sign-out form posts (`/auth/account/sessions/{id}/end`).
    pub end_action: String,
    /// The session the client's deep link named (`device_view`): shown marked.
    pub selected: bool,
}

impl SessionView {
    /// Element X on device `ABCDEFGHIJ`.
    pub fn sample() -> Self {
        Self {
            name: "Element X".to_owned(),
            legacy: false,
            device_id: Some("ABCDEFGHIJ".to_owned()),
            created_at: "2026-01-02 03:04 UTC".to_owned(),
            last_active_at: Some("2026-01-03 10:00 UTC".to_owned()),
            end_action: format!("{SAMPLE_PREFIX}/account/sessions/01J00000000000000000SESS00/end"),
            selected: true,
        }
    }
}

/// The account page: the user, their addresses, display name and sessions.
#[derive(Debug, Clone, Serialize)]
pub struct AccountContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the forms.
    pub csrf_token: String,
    /// The signed-in user.
    pub user: UserView,
    /// The email addresses, display name and deactivation blocks.
    pub manage: AccountManageView,
    /// The active OAuth and legacy sessions, oldest first.
    pub sessions: Vec<SessionView>,
    /// A message above the lists (a deep link to a device that has no session).
    pub notice: Option<String>,
    /// The cross-signing reset page (`/auth/account/?action=org.matrix.cross_signing_reset`).
    pub cross_signing_reset_url: String,
    /// Where the "Sign out of this browser" form posts (`/auth/logout`).
    pub logout_action: String,
    /// The password change page (`/auth/account/password`), when it is offered.
    pub password_change_url: Option<String>,
}

impl AccountContext {
    /// Alice with one address, an app session and a legacy one.
    pub fn sample() -> Self {
        let legacy = SessionView {
            name: "Legacy login".to_owned(),
            legacy: true,
            device_id: Some("KLMNOPQRST".to_owned()),
            last_active_at: None,
            selected: false,
            ..SessionView::sample()
        };
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            user: UserView::sample(),
            manage: AccountManageView::sample(),
            sessions: vec![SessionView::sample(), legacy],
            notice: None,
            cross_signing_reset_url: format!(
                "{SAMPLE_PREFIX}/account/?action=org.matrix.cross_signing_reset"
            ),
            logout_action: format!("{SAMPLE_PREFIX}/logout"),
            password_change_url: Some(format!("{SAMPLE_PREFIX}/account/password")),
        }
    }
}

/// The confirmation of a client's "sign out this device" link (`org.matrix.device_delete`).
#[derive(Debug, Clone, Serialize)]
pub struct SessionEndContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the forms.
    pub csrf_token: String,
    /// The device.
    pub device_id: String,
    /// The active sessions holding it (usually one).
    pub sessions: Vec<SessionView>,
    /// The account page (`/auth/account/`).
    pub account_url: String,
}

impl SessionEndContext {
    /// Element X's device.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            device_id: "ABCDEFGHIJ".to_owned(),
            sessions: vec![SessionView::sample()],
            account_url: format!("{SAMPLE_PREFIX}/account/"),
        }
    }
}

/// The cross-signing reset page (`org.matrix.cross_signing_reset`): an explanation with a
/// button, or, once allowed, what to do next.
#[derive(Debug, Clone, Serialize)]
pub struct CrossSigningResetContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// The signed-in user.
    pub user: UserView,
    /// Where the form posts (`/auth/account/cross-signing-reset`).
    pub form_action: String,
    /// The homeserver now allows the reset (shows the "go back to your app" text).
    pub allowed: bool,
    /// The account page (`/auth/account/`).
    pub account_url: String,
}

impl CrossSigningResetContext {
    /// Alice, before pressing the button.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            user: UserView::sample(),
            form_action: format!("{SAMPLE_PREFIX}/account/cross-signing-reset"),
            allowed: false,
            account_url: format!("{SAMPLE_PREFIX}/account/"),
        }
    }
}
