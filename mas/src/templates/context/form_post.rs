//! The `form_post` response page (OAuth 2.0 Form Post Response Mode): the authorization
//! response as hidden fields of a form that posts to the client's redirect URI. We serve no
//! JavaScript, so the form is not submitted automatically: the page has a visible "Continue"
//! button.
//!
//! The same page tells a person that an application's request was refused (RFC 9700 §4.11.2:
//! an error found before the person did anything is not sent to the client by an automatic
//! redirect), with the way back as a link or as this form.

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
    /// Set when the page reports a refused request.
    pub error: Option<AuthorizeErrorView>,
    /// The way back as a link (the redirect URI with the response in its query or fragment)
    /// instead of the form.
    pub link: Option<String>,
}

/// A refused authorization request, as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizeErrorView {
    /// The OAuth error code (`invalid_scope`).
    pub code: String,
    /// What was wrong, in the server's words.
    pub description: String,
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
            error: None,
            link: None,
        }
    }

    /// A refused request from a client that wants its answer in the query.
    pub fn error_sample() -> Self {
        Self {
            params: Vec::new(),
            error: Some(AuthorizeErrorView {
                code: "invalid_scope".to_owned(),
                description: "the scope is malformed".to_owned(),
            }),
            link: Some("https://app.example.com/callback?error=invalid_scope&state=xyz".to_owned()),
            ..Self::sample()
        }
    }
}
