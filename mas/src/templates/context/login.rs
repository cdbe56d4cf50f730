//! The login page (`GET/POST /login`, docs/protocol.md#pages).

use serde::Serialize;

use super::{FormError, SAMPLE_CSRF, SAMPLE_PREFIX};

/// The login page: a username/password form and/or one button per upstream provider.
#[derive(Debug, Clone, Serialize)]
pub struct LoginContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/login`).
    pub form_action: String,
    /// Whether the username/password form is shown (`passwords.enabled`).
    pub password_enabled: bool,
    /// Whether an email address may be typed instead of the username
    /// (`account.login_with_email_allowed`): the field is "Username or email".
    pub email_allowed: bool,
    /// The username to fill in (`login_hint`, or the last attempt).
    pub username: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
    /// "Continue with …" buttons.
    pub providers: Vec<ProviderLink>,
    /// What to continue with after login, sent back as hidden `kind` and `id` fields.
    pub post_auth_action: Option<PostAuthAction>,
    /// The "Forgot password?" link (`/auth/recover`), when password recovery is on.
    pub recovery_url: Option<String>,
    /// The registration page (with the same post-auth action) when registration is open.
    pub register_url: Option<String>,
}

/// A "continue with" button for an upstream identity provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderLink {
    /// The provider's human name.
    pub name: String,
    /// Where the button leads (`/auth/upstream/authorize/{id}?…`).
    pub url: String,
}

/// The post-auth action of the login query (`kind` and `id`).
#[derive(Debug, Clone, Serialize)]
pub struct PostAuthAction {
    /// `continue_authorization_grant` and the like.
    pub kind: String,
    /// The object it refers to.
    pub id: String,
}

impl LoginContext {
    /// A login page with an error, a provider and a pending authorization grant.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/login"),
            password_enabled: true,
            email_allowed: false,
            username: "alice".to_owned(),
            errors: vec![FormError::form("Invalid username or password.")],
            providers: vec![ProviderLink {
                name: "Example SSO".to_owned(),
                url: format!("{SAMPLE_PREFIX}/upstream/authorize/01J00000000000000000PR0V1D"),
            }],
            recovery_url: Some(format!("{SAMPLE_PREFIX}/recover")),
            post_auth_action: Some(PostAuthAction {
                kind: "continue_authorization_grant".to_owned(),
                id: "01J0000000000000000000GRNT".to_owned(),
            }),
            register_url: Some(format!("{SAMPLE_PREFIX}/register")),
        }
    }
}
