//! The consent page (`GET/POST /consent/{grant_id}`, docs/protocol.md#consent) and the requested
//! scopes in words (docs/protocol.md#scopes-and-policy).

use serde::Serialize;

use super::{SAMPLE_CSRF, SAMPLE_PREFIX, web_url};

/// The consent page: who asks, for what, on which account; approve and deny forms.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentContext {
    /// The public path prefix (`/auth`).
    pub prefix: String,
    /// The CSRF token of both forms.
    pub csrf_token: String,
    /// Where both forms post (`/auth/consent/{grant_id}`), with `action=approve` or `deny`.
    pub form_action: String,
    /// The client asking.
    pub client: ClientView,
    /// The requested scopes in words ([`describe_scopes`]).
    pub scopes: Vec<ScopeView>,
    /// The device ID of the device scope, if any ([`device_id_of`]).
    pub device_id: Option<String>,
    /// The signed-in user.
    pub user: UserView,
}

/// A client as the user sees it. URLs that are not `http(s)://` are left out.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// The client ID.
    pub client_id: String,
    /// `client_name`, or the `client_uri` host, or the client ID.
    pub name: String,
    /// `logo_uri`.
    #[serde(serialize_with = "web_url")]
    pub logo_uri: Option<String>,
    /// `client_uri` (the client's home page).
    #[serde(serialize_with = "web_url")]
    pub client_uri: Option<String>,
    /// `tos_uri`.
    #[serde(serialize_with = "web_url")]
    pub tos_uri: Option<String>,
    /// `policy_uri`.
    #[serde(serialize_with = "web_url")]
    pub policy_uri: Option<String>,
}

/// A signed-in user as pages show them.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    /// The full Matrix ID (`@alice:example.com`).
    pub mxid: String,
    /// The display name from the homeserver, if known.
    pub display_name: Option<String>,
}

impl UserView {
    /// Alice.
    pub fn sample() -> Self {
        Self {
            mxid: "@alice:example.com".to_owned(),
            display_name: Some("Alice".to_owned()),
        }
    }
}

/// One requested permission in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeView {
    /// The sentence ("See your email address").
    pub text: String,
    /// A value shown after the sentence (an unknown scope itself).
    pub detail: Option<String>,
    /// Grants powers over other users: highlighted.
    pub sensitive: bool,
}

const API_SCOPES: [&str; 2] = [
    "urn:matrix:client:api:*",
    "urn:matrix:org.matrix.msc2967.client:api:*",
];
const DEVICE_PREFIXES: [&str; 2] = [
    "urn:matrix:client:device:",
    "urn:matrix:org.matrix.msc2967.client:device:",
];

/// The scopes of a space-separated `scope` in words, in request order; the stable and
/// unstable forms of one scope give one sentence.
pub fn describe_scopes(scope: &str) -> Vec<ScopeView> {
    let mut views: Vec<ScopeView> = Vec::new();
    for token in scope.split(' ').filter(|token| !token.is_empty()) {
        let view = describe(token);
        if !views.contains(&view) {
            views.push(view);
        }
    }
    views
}

/// The device ID of the first device scope (stable or unstable) in `scope`.
pub fn device_id_of(scope: &str) -> Option<String> {
    scope.split(' ').find_map(device_id_in).map(str::to_owned)
}

fn device_id_in(token: &str) -> Option<&str> {
    DEVICE_PREFIXES
        .iter()
        .find_map(|prefix| token.strip_prefix(prefix))
        .filter(|id| !id.is_empty())
}

fn describe(token: &str) -> ScopeView {
    let plain = |text: &str| ScopeView {
        text: text.to_owned(),
        detail: None,
        sensitive: false,
    };
    let sensitive = |text: &str| ScopeView {
        sensitive: true,
        ..plain(text)
    };
    if device_id_in(token).is_some() {
        return plain("Add a new session (a device) to your account");
    }
    match token {
        "openid" => plain("See your Matrix user ID"),
        "email" => plain("See your email address"),
        _ if API_SCOPES.contains(&token) => {
            plain("Use your account: read and send messages, join rooms and change settings")
        }
        "urn:synapse:admin:*" => {
            sensitive("Administer the homeserver: manage every user, room and setting")
        }
        "urn:mas:admin" => sensitive("Administer accounts: manage every user and session"),
        "urn:mas:graphql:*" => plain("Manage your account: sessions, email addresses, password"),
        other => ScopeView {
            detail: Some(other.to_owned()),
            ..plain("Other access")
        },
    }
}

impl ClientView {
    /// Element X, with its logo and links (the samples of the pages that name a client).
    pub fn sample() -> Self {
        Self {
            client_id: "01J00000000000000000CL1ENT".to_owned(),
            name: "Element X".to_owned(),
            logo_uri: Some("https://element.io/mobile-icon.png".to_owned()),
            client_uri: Some("https://element.io/".to_owned()),
            tos_uri: Some("https://element.io/terms".to_owned()),
            policy_uri: Some("https://element.io/privacy".to_owned()),
        }
    }
}

impl ConsentContext {
    /// Element X asking for API access and a device.
    pub fn sample() -> Self {
        let scope = "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";
        Self {
            prefix: SAMPLE_PREFIX.to_owned(),
            csrf_token: SAMPLE_CSRF.to_owned(),
            form_action: format!("{SAMPLE_PREFIX}/consent/01J0000000000000000000GRNT"),
            client: ClientView::sample(),
            scopes: describe_scopes(scope),
            device_id: device_id_of(scope),
            user: UserView::sample(),
        }
    }
}
