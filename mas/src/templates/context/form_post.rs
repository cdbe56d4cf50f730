//! The `form_post` response page (OAuth 2.0 Form Post Response Mode): the authorization
//! response as hidden fields of a form that posts to the client's redirect URI. We serve no
//! JavaScript, so the form is not submitted automatically: the page has a visible "Continue"
//! button.

use serde::Serialize;

use super::SAMPLE_PREFIX;

/// A form posting the authorization response to the client.
#[derive(Debug, Clone, Serialize)]
pub struct FormPostContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The client's redirect URI (the form's action).
    pub redirect_uri: String,
    /// The client's name, for the text of the page.
    pub client_name: String,
    /// The response parameters (`code`, `state`, `error`…), in order.
    pub params: Vec<FormPostParam>,
}

/// One hidden field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FormPostParam {
    /// The parameter name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl FormPostContext {
    /// A code and state on their way to a web client.
    pub fn sample() -> Self {
        let param = |name: &str, value: &str| FormPostParam {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            redirect_uri: "https://app.example.com/callback".to_owned(),
            client_name: "Example App".to_owned(),
            params: vec![
                param("code", "SampleCode0123456789abcdefghijkl"),
                param("state", "xyz"),
            ],
        }
    }
}
