//! The index page (`GET /`).

use serde::Serialize;

use super::{SAMPLE_CSRF, SAMPLE_PREFIX, UserView};

/// The index: who is signed in, with a logout form; or a sign-in link.
#[derive(Debug, Clone, Serialize)]
pub struct IndexContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the logout form.
    pub csrf_token: String,
    /// The signed-in user; `None` shows the sign-in link.
    pub user: Option<UserView>,
    /// Where the logout form posts (`/auth/logout`).
    pub logout_action: String,
    /// The login page (`/auth/login`).
    pub login_url: String,
}

impl IndexContext {
    /// Alice, signed in.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            user: Some(UserView::sample()),
            logout_action: format!("{SAMPLE_PREFIX}/logout"),
            login_url: format!("{SAMPLE_PREFIX}/login"),
        }
    }
}
