//! The "continue to the application" page of a legacy Matrix SSO login
//! (`/complete-compat-sso/{id}`, docs/protocol.md#compat-layer).

use serde::Serialize;

use super::{SAMPLE_CSRF, SAMPLE_PREFIX, UserView};

/// Who is signed in and where the login token will go; one "Continue" form.
#[derive(Debug, Clone, Serialize)]
pub struct CompatSsoContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/complete-compat-sso/{id}`).
    pub form_action: String,
    /// The signed-in user.
    pub user: UserView,
    /// The host (or, without one, the scheme) of the client's `redirectUrl`: what the user
    /// must recognise before continuing.
    pub redirect_host: String,
    /// The client's full `redirectUrl`, shown in small print.
    pub redirect_uri: String,
}

impl CompatSsoContext {
    /// Alice, sending a login to an Element Web at `app.element.io`.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/complete-compat-sso/01J000000000000000000SS0L0"),
            user: UserView::sample(),
            redirect_host: "app.element.io".to_owned(),
            redirect_uri: "https://app.element.io/?no_universal_links=true".to_owned(),
        }
    }
}
