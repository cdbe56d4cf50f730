//! The page that finishes a `form_post` answer from an upstream provider
//! (`POST /upstream/callback/{provider_id}`). The provider's cross-site POST does not carry our
//! `SameSite=Lax` cookies, so the answer is posted once more from our own origin. We serve no
//! JavaScript: the person presses the button.

use serde::Serialize;

use super::{FormPostParam, SAMPLE_PREFIX};

/// A form posting the provider's answer to our callback again. No CSRF field: the `state`
/// (checked against the `upstream-oauth2-sessions` cookie) protects it.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamResubmitContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The provider's display name.
    pub provider_name: String,
    /// The callback (`/auth/upstream/callback/{provider_id}`).
    pub form_action: String,
    /// The provider's answer (`state`, `code` or `error`…) and our marker field.
    pub params: Vec<FormPostParam>,
}

impl UpstreamResubmitContext {
    /// A code and state back from the sample provider.
    pub fn sample() -> Self {
        let param = |name: &str, value: &str| FormPostParam {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            provider_name: "Example SSO".to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/upstream/callback/01J00000000000000000PR0V1D"),
            params: vec![
                param("code", "sample-code"),
                param("state", "sample-state"),
                param("mas_resubmitted", "1"),
            ],
        }
    }
}
