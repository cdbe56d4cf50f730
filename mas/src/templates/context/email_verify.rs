//! The code entry page of an email authentication (docs/protocol.md#email-verification), shared
//! by registration and by adding an address on the account page.

use serde::Serialize;

use super::{FormError, SAMPLE_CSRF, SAMPLE_PREFIX};

/// "We sent a code to …": one field for the code, and a way to get a new one.
#[derive(Debug, Clone, Serialize)]
pub struct EmailVerifyContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of the forms.
    pub csrf_token: String,
    /// The page title and heading ("Verify your email").
    pub heading: String,
    /// The address the code went to.
    pub email: String,
    /// Where the code form posts.
    pub form_action: String,
    /// Where the "send a new code" form posts, when offered.
    pub resend_action: Option<String>,
    /// A way back ("Use another address", "Back to your account"): text and URL.
    pub back: Option<(String, String)>,
    /// A message above the form ("A new code is on its way").
    pub notice: Option<String>,
    /// Problems with the last attempt (field `code`).
    pub errors: Vec<FormError>,
}

impl EmailVerifyContext {
    /// The page after a wrong code, with every link.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            heading: "Verify your email".to_owned(),
            email: "alice@example.com".to_owned(),
            form_action: format!(
                "{SAMPLE_PREFIX}/register/01J0000000000000000000000A/verify-email"
            ),
            resend_action: Some(format!(
                "{SAMPLE_PREFIX}/register/01J0000000000000000000000A/verify-email/resend"
            )),
            back: Some((
                "Use another address".to_owned(),
                format!("{SAMPLE_PREFIX}/register"),
            )),
            notice: Some("A new code is on its way.".to_owned()),
            errors: vec![FormError::field(
                "code",
                "That code is not right. You can try 4 more times.",
            )],
        }
    }
}
