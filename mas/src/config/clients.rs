//! `clients`: OAuth 2.0 clients declared in the configuration rather than registered
//! dynamically (upstream key names). `mas-cli server` writes them into the database at start
//! (`storage::static_clients::sync_static_clients`): created, or replaced under the same `client_id`. Clients removed
//! from the file stay in the database (upstream only deletes them with `config sync --prune`).
//!
//! ```yaml
//! clients:
//!   - client_id: 01J0000000000000000000SYNA    # a ULID
//!     client_auth_method: client_secret_basic  # none, client_secret_basic, client_secret_post
//!     client_secret_file: /path/to/secret      # or client_secret: "…"
//!     client_name: My service
//!     redirect_uris: ["https://app.example.com/callback"]
//! ```

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use url::Url;

use super::{Problems, REDACTED, SecretError, secret};
use crate::model::redirect_uri;
use crate::model::{ClientAuthMethod, ClientMetadata, GrantTypes};

/// One static client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The `client_id`: a ULID (26 characters of Crockford base 32).
    pub client_id: String,
    /// How the client authenticates at the token endpoint: `none` (a public client),
    /// `client_secret_basic` or `client_secret_post`. The JWT methods (`client_secret_jwt`,
    /// `private_key_jwt`) are not supported.
    pub client_auth_method: String,
    /// A name shown to users on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client secret (for the `client_secret_*` methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// File holding the client secret (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<Utf8PathBuf>,
    /// Where authorization responses may be sent: absolute URIs without a fragment, `https`
    /// or `http`, or a private-use scheme that is a reversed domain name (`com.example.app:/cb`,
    /// RFC 8252 §7.1). Script and local schemes (`javascript:`, `data:`, `file:`…) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<Url>,
}

#[cfg(test)]
impl ClientConfig {
    /// The client `01J00000000000000000SYNAPS` ("Service") with this method and inline secret.
    pub(crate) fn sample(method: &str, secret: Option<&str>) -> Self {
        Self {
            client_id: "01J00000000000000000SYNAPS".to_owned(),
            client_auth_method: method.to_owned(),
            client_name: Some("Service".to_owned()),
            client_secret: secret.map(str::to_owned),
            client_secret_file: None,
            redirect_uris: vec!["https://app.example.com/cb".parse().unwrap()],
        }
    }
}

/// Why a static client cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// `client_id` is not a ULID.
    #[error("client_id {0:?} is not a ULID")]
    ClientId(String),
    /// `client_auth_method` is unknown or unsupported.
    #[error("client_auth_method {0:?} is not one of none, client_secret_basic, client_secret_post")]
    AuthMethod(String),
    /// A public client has a secret.
    #[error("a client with client_auth_method none may not have a secret")]
    SecretOnPublicClient,
    /// The secret is missing or unreadable.
    #[error("client_secret: {0}")]
    Secret(#[from] SecretError),
}

impl ClientConfig {
    /// The client id.
    pub fn id(&self) -> Result<Ulid, ClientConfigError> {
        Ulid::from_string(&self.client_id)
            .map_err(|_| ClientConfigError::ClientId(self.client_id.clone()))
    }

    /// The authentication method.
    pub fn auth_method(&self) -> Result<ClientAuthMethod, ClientConfigError> {
        match self.client_auth_method.parse() {
            Ok(
                method @ (ClientAuthMethod::None
                | ClientAuthMethod::ClientSecretBasic
                | ClientAuthMethod::ClientSecretPost),
            ) => Ok(method),
            _ => Err(ClientConfigError::AuthMethod(
                self.client_auth_method.clone(),
            )),
        }
    }

    /// The secret: required for the secret methods, refused for `none`.
    pub fn load_secret(&self) -> Result<Option<String>, ClientConfigError> {
        let secret = secret::read_optional(
            "client_secret",
            self.client_secret.as_deref(),
            self.client_secret_file.as_deref(),
        )?;
        match (self.auth_method()?, secret) {
            (ClientAuthMethod::None, Some(_)) => Err(ClientConfigError::SecretOnPublicClient),
            (ClientAuthMethod::None, None) => Ok(None),
            (_, None) => Err(SecretError::Missing("client_secret").into()),
            (_, Some(secret)) if secret.is_empty() => {
                Err(SecretError::Invalid("the secret is empty".to_owned()).into())
            }
            (_, Some(secret)) => Ok(Some(secret)),
        }
    }

    /// The client's metadata: the code and refresh grants, and client_credentials for a
    /// confidential client.
    pub fn metadata(&self) -> Result<ClientMetadata, ClientConfigError> {
        let method = self.auth_method()?;
        Ok(ClientMetadata {
            redirect_uris: self.redirect_uris.clone(),
            grant_types: GrantTypes {
                authorization_code: true,
                refresh_token: true,
                client_credentials: method != ClientAuthMethod::None,
                device_code: false,
            },
            client_name: self.client_name.clone(),
            logo_uri: None,
            client_uri: None,
            policy_uri: None,
            tos_uri: None,
            jwks_uri: None,
            jwks: None,
            id_token_signed_response_alg: None,
            userinfo_signed_response_alg: None,
            token_endpoint_auth_method: method,
            token_endpoint_auth_signing_alg: None,
            initiate_login_uri: None,
            application_type: None,
            contacts: Vec::new(),
        })
    }
}

/// Checks every client; duplicated ids are reported too.
pub(crate) fn validate(clients: &[ClientConfig], problems: &mut Problems) {
    let mut seen = std::collections::BTreeSet::new();
    for (index, client) in clients.iter().enumerate() {
        let path = format!("clients[{index}]");
        match client.id() {
            Ok(id) if !seen.insert(id) => {
                problems.push(
                    format!("{path}.client_id"),
                    "the same client_id is used twice",
                );
            }
            Ok(_) => {}
            Err(error) => problems.push(format!("{path}.client_id"), error.to_string()),
        }
        for (uri_index, uri) in client.redirect_uris.iter().enumerate() {
            if let Err(why) = redirect_uri::check_shape(uri) {
                problems.push(
                    format!("{path}.redirect_uris[{uri_index}]"),
                    format!("client {}: {uri}: {why}", client.client_id),
                );
            }
        }
        if let Err(error) = client.auth_method() {
            problems.push(format!("{path}.client_auth_method"), error.to_string());
            continue;
        }
        match client.load_secret() {
            Ok(_) => {}
            Err(ClientConfigError::Secret(error)) => error.report(problems, &path, "client_secret"),
            Err(error) => problems.push(format!("{path}.client_secret"), error.to_string()),
        }
    }
}

/// Replaces inline secrets with a placeholder.
pub(crate) fn redact(clients: &mut [ClientConfig]) {
    for client in clients {
        if client.client_secret.is_some() {
            client.client_secret = Some(REDACTED.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(method: &str, secret: Option<&str>) -> ClientConfig {
        ClientConfig::sample(method, secret)
    }

    fn problems(clients: &[ClientConfig]) -> Vec<String> {
        let mut problems = Problems::default();
        validate(clients, &mut problems);
        problems.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn upstream_key_names_parse() {
        let yaml = "client_id: 01J00000000000000000SYNAPS\n\
                    client_auth_method: client_secret_basic\n\
                    client_secret: hunter2\n\
                    redirect_uris: [\"https://app.example.com/cb\"]\n";
        let parsed: ClientConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(
            parsed.auth_method().unwrap(),
            ClientAuthMethod::ClientSecretBasic
        );
        assert_eq!(parsed.load_secret().unwrap().as_deref(), Some("hunter2"));
        assert!(
            serde_yaml::from_str::<ClientConfig>(
                "client_id: x\nclient_auth_method: none\nbogus: 1"
            )
            .is_err()
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        assert!(problems(&[client("client_secret_post", Some("s"))]).is_empty());
        assert!(problems(&[client("none", None)]).is_empty());
        let mut bad_id = client("none", None);
        bad_id.client_id = "nope".to_owned();
        assert_eq!(
            problems(&[bad_id]),
            ["clients[0].client_id: client_id \"nope\" is not a ULID"]
        );
        assert_eq!(
            problems(&[client("none", Some("s"))]),
            [
                "clients[0].client_secret: a client with client_auth_method none may not have a secret"
            ]
        );
        assert_eq!(
            problems(&[client("client_secret_basic", None)]),
            ["clients[0].client_secret: set `client_secret` or `client_secret_file`"]
        );
        assert_eq!(problems(&[client("private_key_jwt", None)]).len(), 1);
        assert_eq!(
            problems(&[client("none", None), client("none", None)]),
            ["clients[1].client_id: the same client_id is used twice"]
        );
    }

    #[test]
    fn unsafe_redirect_uris_are_refused_naming_the_client() {
        let mut bad = client("none", None);
        bad.redirect_uris = vec![
            "https://app.example.com/cb".parse().unwrap(),
            "JavaScript:alert(1)".parse().unwrap(),
            "myapp:/cb".parse().unwrap(),
            "com.example.app:/cb#x".parse().unwrap(),
        ];
        let found = problems(&[bad.clone()]);
        assert_eq!(found.len(), 3, "{found:?}");
        let id = &bad.client_id;
        assert!(
            found[0].starts_with("clients[0].redirect_uris[1]"),
            "{found:?}"
        );
        assert!(
            found[0].contains(id) && found[0].contains("javascript"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("clients[0].redirect_uris[2]"),
            "{found:?}"
        );
        assert!(found[2].contains("fragment"), "{found:?}");
        bad.redirect_uris = vec![
            "com.example.app:/cb".parse().unwrap(),
            "http://127.0.0.1:8080/cb".parse().unwrap(),
        ];
        assert!(problems(&[bad]).is_empty());
    }

    #[test]
    fn redaction_hides_inline_secrets() {
        let mut clients = [client("client_secret_basic", Some("hunter2"))];
        redact(&mut clients);
        assert_eq!(clients[0].client_secret.as_deref(), Some(REDACTED));
    }
}
