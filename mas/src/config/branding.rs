//! `branding`: how the pages present the service. Upstream MAS's key names; only `tos_uri` is
//! acted on (the terms registration asks people to accept), the others are accepted so
//! upstream configs load.

use serde::{Deserialize, Serialize};
use url::Url;

use super::Problems;

/// The `branding` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingConfig {
    /// The name of the service shown on pages (unused for now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The privacy policy (unused for now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<Url>,
    /// The terms of service. When set, registration asks people to accept them (a checkbox
    /// with a link), and the registration records which URL was accepted. http or https.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<Url>,
    /// The legal imprint (unused for now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imprint: Option<String>,
}

impl BrandingConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        for (key, url) in [("policy_uri", &self.policy_uri), ("tos_uri", &self.tos_uri)] {
            if let Some(url) = url
                && !matches!(url.scheme(), "http" | "https")
            {
                problems.push(format!("branding.{key}"), "must be an http or https URL");
            }
        }
    }
}
