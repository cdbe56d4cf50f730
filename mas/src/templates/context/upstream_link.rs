//! The confirmation page of a login through an upstream provider (`/upstream/link/{link_id}`,
//! docs/protocol.md#upstream-login): the account that will be created from the provider's claims,
//! with the choices `claims_imports` leaves to the person.

use serde::Serialize;

use super::{FormError, SAMPLE_CSRF, SAMPLE_PREFIX};

/// "Create your account": the username (fixed or to choose), and the display name and email
/// the provider sent (fixed, or each with an opt-out box when `suggest`ed).
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamLinkContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the form.
    pub csrf_token: String,
    /// Where the form posts (`/auth/upstream/link/{link_id}`).
    pub form_action: String,
    /// The provider's display name.
    pub provider_name: String,
    /// The username to create (imported, suggested or last typed).
    pub username: String,
    /// Whether the person may choose the username (it is not `force`d or `require`d).
    pub username_editable: bool,
    /// The Matrix ID the username gives (`@alice:example.com`), when it is fixed.
    pub mxid: Option<String>,
    /// The imported display name, if any.
    pub display_name: Option<String>,
    /// Whether the display name has an opt-out box (`suggest`).
    pub display_name_optional: bool,
    /// The imported (verified) email address, if any.
    pub email: Option<String>,
    /// Whether the email has an opt-out box (`suggest`).
    pub email_optional: bool,
    /// Problems with the last attempt.
    pub errors: Vec<FormError>,
}

impl UpstreamLinkContext {
    /// A suggested username with an error, a forced display name and a suggested email.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/upstream/link/01J00000000000000000L1NK00"),
            provider_name: "Example SSO".to_owned(),
            username: "alice".to_owned(),
            username_editable: true,
            mxid: None,
            display_name: Some("Alice Liddell".to_owned()),
            display_name_optional: false,
            email: Some("alice@example.com".to_owned()),
            email_optional: true,
            errors: vec![FormError::field("username", "This username is taken.")],
        }
    }
}
