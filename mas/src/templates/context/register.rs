//! The registration pages (`GET/POST /register`, `GET/POST /register/{id}/display-name`;
//! docs/protocol.md#registration).

use serde::Serialize;

use super::{FormError, PostAuthAction, SAMPLE_CSRF, SAMPLE_PREFIX, StrengthView};

/// The registration form.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/register`).
    pub form_action: String,
    /// The server name, shown after the username field (`@alice:example.com`).
    pub server_name: String,
    /// The username of the last attempt.
    pub username: String,
    /// The email address of the last attempt.
    pub email: String,
    /// The registration token of the last attempt.
    pub token: String,
    /// Whether an email address is asked for (verified with a mailed code).
    pub email_required: bool,
    /// Whether a registration token is asked for.
    pub token_required: bool,
    /// The terms of service to accept, when configured.
    pub tos_uri: Option<String>,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
    /// The strength meter's verdict on a refused password.
    pub strength: Option<StrengthView>,
    /// What to continue with afterwards, sent back as hidden `kind` and `id` fields.
    pub post_auth_action: Option<PostAuthAction>,
    /// The sign-in page (with the same post-auth action).
    pub login_url: String,
}

impl RegisterContext {
    /// A refused attempt with every field shown and a pending authorization grant.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/register"),
            server_name: "example.com".to_owned(),
            username: "alice".to_owned(),
            email: "alice@example.com".to_owned(),
            token: "welcome".to_owned(),
            email_required: true,
            token_required: true,
            tos_uri: Some("https://example.com/terms".to_owned()),
            errors: vec![FormError::field(
                "password",
                "This password is too easy to guess.",
            )],
            strength: Some(StrengthView::sample()),
            post_auth_action: Some(PostAuthAction {
                kind: "continue_authorization_grant".to_owned(),
                id: "01J0000000000000000000GRNT".to_owned(),
            }),
            login_url: format!("{SAMPLE_PREFIX}/login"),
        }
    }
}

/// The optional display-name step before the account is created.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterDisplayNameContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/register/{id}/display-name`).
    pub form_action: String,
    /// The Matrix ID being created.
    pub mxid: String,
    /// The display name of the last attempt.
    pub display_name: String,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
}

impl RegisterDisplayNameContext {
    /// Alice's registration.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!(
                "{SAMPLE_PREFIX}/register/01J0000000000000000000REG0/display-name"
            ),
            mxid: "@alice:example.com".to_owned(),
            display_name: "Alice".to_owned(),
            errors: Vec::new(),
        }
    }
}
