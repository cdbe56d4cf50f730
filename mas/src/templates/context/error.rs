//! The error page.

use serde::Serialize;

use super::SAMPLE_PREFIX;

/// An error page: what went wrong, in words, and where to go from here.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The heading ("This link has expired").
    pub title: String,
    /// What happened and what the user can do.
    pub description: String,
    /// A short code for support requests (`invalid_client`), never internal details.
    pub details: Option<String>,
    /// A link back (to the client or the index), if there is one.
    pub back_url: Option<String>,
}

impl ErrorContext {
    /// An unknown-client error with a code and a back link.
    pub fn sample() -> Self {
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            title: "Unknown application".to_owned(),
            description: "The application that sent you here is not registered with this \
                          server. Go back to the application and try again."
                .to_owned(),
            details: Some("invalid_client".to_owned()),
            back_url: Some(format!("{SAMPLE_PREFIX}/")),
        }
    }
}
