//! The JSON of `GET/POST /_matrix/client/{v}/login` (Matrix client-server API "Login"): the
//! request, its credentials by `type`, and the answers.
//!
//! The body is read in two steps. [`LoginBody`] is the flat shape every body must have,
//! whatever its `type`: a field of the wrong JSON type anywhere is `M_BAD_JSON` with serde's
//! message, as it always was. [`LoginRequest`] then picks the [`Credentials`] by `type`
//! without failing, so that an unknown type or a missing field is answered by the handler with
//! its own errcode, in the order of its checks (the device id first, then the type). The
//! request types have no `Debug`: they hold the password and the login token.

use serde::{Deserialize, Serialize};

/// The wire shape of the body: every field optional but `type`.
#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    identifier: Option<IdentifierBody>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// The wire shape of `identifier`.
#[derive(Debug, Deserialize)]
struct IdentifierBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    medium: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

/// The body of `POST …/login`: the credentials and the fields every login type shares.
#[derive(Deserialize)]
#[serde(from = "LoginBody")]
pub(super) struct LoginRequest {
    /// What proves who logs in, by `type`.
    pub(super) credentials: Credentials,
    /// The device to log in as; a new one when absent.
    pub(super) device_id: Option<String>,
    /// The display name of the device.
    pub(super) initial_device_display_name: Option<String>,
    /// Whether the client wants an expiring access token and a refresh token.
    pub(super) refresh_token: bool,
}

/// The credentials of a login, by its `type`. A missing field is `None` here, answered by the
/// handler when it reaches it.
pub(super) enum Credentials {
    /// `m.login.password`.
    Password(PasswordCredentials),
    /// `m.login.token`: the `loginToken` of a legacy SSO login.
    Token {
        /// `token`.
        token: Option<String>,
    },
    /// `m.login.application_service`: not supported, refused with its own errcode.
    ApplicationService,
    /// Any other type (`m.login.dummy`, a typo…).
    Unsupported,
}

/// The fields of an `m.login.password` login.
pub(super) struct PasswordCredentials {
    /// The deprecated top-level `user` (a localpart or a full MXID); wins over `identifier`.
    pub(super) user: Option<String>,
    /// `identifier`.
    pub(super) identifier: Option<Identifier>,
    /// `password`.
    pub(super) password: Option<String>,
}

/// Who logs in (Matrix client-server API "Identifier types"), by its `type`.
#[derive(Debug)]
pub(super) enum Identifier {
    /// `m.id.user`: a localpart or a full MXID in `user`.
    User {
        /// `user`.
        user: Option<String>,
    },
    /// `m.id.thirdparty` with `medium: "email"`: an email address in `address`.
    Email {
        /// `address`.
        address: Option<String>,
    },
    /// `m.id.phone`, another `m.id.thirdparty` medium or anything else: users have no such
    /// identifiers to log in with here.
    Unsupported,
}

impl From<LoginBody> for LoginRequest {
    fn from(body: LoginBody) -> Self {
        let credentials = match body.kind.as_str() {
            "m.login.password" => Credentials::Password(PasswordCredentials {
                user: body.user,
                identifier: body.identifier.map(Identifier::from),
                password: body.password,
            }),
            "m.login.token" => Credentials::Token { token: body.token },
            "m.login.application_service" => Credentials::ApplicationService,
            _ => Credentials::Unsupported,
        };
        Self {
            credentials,
            device_id: body.device_id,
            initial_device_display_name: body.initial_device_display_name,
            refresh_token: body.refresh_token,
        }
    }
}

impl From<IdentifierBody> for Identifier {
    fn from(body: IdentifierBody) -> Self {
        match body.kind.as_str() {
            "m.id.user" => Self::User { user: body.user },
            "m.id.thirdparty" if body.medium.as_deref() == Some("email") => Self::Email {
                address: body.address,
            },
            _ => Self::Unsupported,
        }
    }
}

/// The answer of `GET …/login`: the supported flows.
#[derive(Debug, Serialize)]
pub(in crate::compat) struct LoginFlows {
    flows: Vec<LoginFlow>,
}

impl LoginFlows {
    /// Password (when enabled), SSO and token, in upstream's order.
    pub(super) fn new(password_enabled: bool) -> Self {
        let mut flows = Vec::with_capacity(3);
        if password_enabled {
            flows.push(LoginFlow::Plain {
                kind: "m.login.password",
            });
        }
        flows.push(LoginFlow::Sso(SsoFlow {
            identity_providers: &[],
            oauth_aware_preferred: true,
            delegated_oidc_compatibility: true,
            kind: "m.login.sso",
        }));
        flows.push(LoginFlow::Plain {
            kind: "m.login.token",
        });
        Self { flows }
    }
}

/// One entry of `flows`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum LoginFlow {
    /// `m.login.sso`.
    Sso(SsoFlow),
    /// A flow that is only its type (`m.login.password`, `m.login.token`).
    Plain {
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

/// The `m.login.sso` flow, with the hints of MSC3824 (OIDC-aware clients). Keys in
/// alphabetical order, as they were always written.
#[derive(Debug, Serialize)]
struct SsoFlow {
    /// Always empty: upstream providers are offered on MAS's own login page.
    identity_providers: &'static [&'static str],
    oauth_aware_preferred: bool,
    #[serde(rename = "org.matrix.msc3824.delegated_oidc_compatibility")]
    delegated_oidc_compatibility: bool,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The answer of a successful `POST …/login`. Keys in alphabetical order, as they were always
/// written; the refresh fields only when a refresh token was asked for.
#[derive(Serialize)]
pub(in crate::compat) struct LoginResponse {
    pub(super) access_token: String,
    pub(super) device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires_in_ms: Option<u64>,
    pub(super) home_server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refresh_token: Option<String>,
    pub(super) user_id: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_serialize_to_the_same_bytes_as_json_values() {
        let flows = serde_json::to_string(&LoginFlows::new(true)).unwrap();
        let expected = json!({ "flows": [
            { "type": "m.login.password" },
            {
                "type": "m.login.sso",
                "identity_providers": [],
                "oauth_aware_preferred": true,
                "org.matrix.msc3824.delegated_oidc_compatibility": true,
            },
            { "type": "m.login.token" },
        ]});
        assert_eq!(flows, expected.to_string());

        let mut response = LoginResponse {
            access_token: "mct_a".to_owned(),
            device_id: "DEVICE".to_owned(),
            expires_in_ms: None,
            home_server: "example.com".to_owned(),
            refresh_token: None,
            user_id: "@alice:example.com".to_owned(),
        };
        let mut expected = json!({
            "access_token": "mct_a",
            "device_id": "DEVICE",
            "user_id": "@alice:example.com",
            "home_server": "example.com",
        });
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            expected.to_string()
        );
        response.refresh_token = Some("mcr_b".to_owned());
        response.expires_in_ms = Some(300_000);
        expected["refresh_token"] = json!("mcr_b");
        expected["expires_in_ms"] = json!(300_000);
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            expected.to_string()
        );
    }
}
