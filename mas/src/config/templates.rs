//! `templates`: where the web page and email templates are loaded from at run time.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

/// The `templates` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Directory of the minijinja templates (`base.html`, `pages/`, `emails/`). Operators may
    /// point it at a copy to customise pages.
    pub path: Utf8PathBuf,
    /// Upstream's asset manifest (from its JavaScript build); unused here, as the appliance
    /// has no JavaScript build step. Accepted so upstream configs load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assets_manifest: Option<Utf8PathBuf>,
    /// Directory of translation files (unused until translations exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translations_path: Option<Utf8PathBuf>,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            path: Utf8PathBuf::from("templates/mas"),
            assets_manifest: None,
            translations_path: None,
        }
    }
}
