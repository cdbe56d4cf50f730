//! OAuth 2.0 clients and their registration metadata (RFC 7591,
//! docs/protocol.md#client-registration).

use std::fmt;

use ulid::Ulid;
use url::Url;

use super::keyword_enum;
use super::redirect_uri::{self, RedirectUriError};

keyword_enum! {
    /// How a client authenticates at the token endpoint (`token_endpoint_auth_method`).
    pub enum ClientAuthMethod as "token_endpoint_auth_method" {
        /// A public client: no secret.
        None = "none",
        /// HTTP Basic with the client secret.
        ClientSecretBasic = "client_secret_basic",
        /// The client secret in the form body.
        ClientSecretPost = "client_secret_post",
        /// A JWT signed with the client secret.
        ClientSecretJwt = "client_secret_jwt",
        /// A JWT signed with the client's own key.
        PrivateKeyJwt = "private_key_jwt",
    }
}

keyword_enum! {
    /// `application_type` (OpenID Connect Dynamic Client Registration).
    pub enum ApplicationType as "application_type" {
        /// A web application (the default).
        Web = "web",
        /// A native (mobile or desktop) application.
        Native = "native",
    }
}

/// Which grant types a client registered for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantTypes {
    /// `authorization_code`.
    pub authorization_code: bool,
    /// `refresh_token`.
    pub refresh_token: bool,
    /// `client_credentials`.
    pub client_credentials: bool,
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub device_code: bool,
}

/// A client's registration metadata, as normalized by the registration endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    /// Where authorization responses may be sent.
    pub redirect_uris: Vec<Url>,
    /// The grant types it may use.
    pub grant_types: GrantTypes,
    /// Its display name.
    pub client_name: Option<String>,
    /// Its logo.
    pub logo_uri: Option<Url>,
    /// Its home page.
    pub client_uri: Option<Url>,
    /// Its privacy policy.
    pub policy_uri: Option<Url>,
    /// Its terms of service.
    pub tos_uri: Option<Url>,
    /// Where its public keys are.
    pub jwks_uri: Option<Url>,
    /// Its public keys, inline (a JWK Set).
    pub jwks: Option<serde_json::Value>,
    /// The ID-token signing algorithm it wants (default RS256).
    pub id_token_signed_response_alg: Option<String>,
    /// The userinfo signing algorithm it wants (default: unsigned JSON).
    pub userinfo_signed_response_alg: Option<String>,
    /// How it authenticates at the token endpoint.
    pub token_endpoint_auth_method: ClientAuthMethod,
    /// The algorithm of its authentication JWTs.
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Third-party-initiated login URI.
    pub initiate_login_uri: Option<Url>,
    /// Web or native.
    pub application_type: Option<ApplicationType>,
    /// Contact addresses.
    pub contacts: Vec<String>,
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`.
    pub id: Ulid,
    /// The client secret, encrypted with `secrets.encryption`; `None` for public clients and
    /// clients that authenticate with keys.
    pub encrypted_client_secret: Option<String>,
    /// Its metadata.
    pub metadata: ClientMetadata,
    /// SHA-256 (hex) of the normalized registration, for deduplicating public clients.
    pub metadata_digest: Option<String>,
    /// Declared in the config (`clients`), not registered.
    pub is_static: bool,
    /// When it was registered (or first loaded from the config).
    pub created_at: i64,
}

impl Client {
    /// A public client (`token_endpoint_auth_method: none`): it has no credentials, so PKCE
    /// is required and it may not introspect.
    pub fn is_public(&self) -> bool {
        self.metadata.token_endpoint_auth_method == ClientAuthMethod::None
    }

    /// The name people see: `client_name`, else its home page's host, else its id.
    pub fn display_name(&self) -> String {
        let metadata = &self.metadata;
        metadata
            .client_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .or_else(|| {
                metadata
                    .client_uri
                    .as_ref()
                    .and_then(|uri| uri.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| self.id.to_string())
    }

    /// Whether `uri` is one of its registered redirect URIs, compared exactly.
    pub fn has_redirect_uri(&self, uri: &Url) -> bool {
        self.metadata.redirect_uris.contains(uri)
    }

    /// Whether the browser may be sent to `uri` for this client under today's rules: the
    /// registration rules for a registered client (a row stored under older rules may break
    /// them), the shape rules for one declared in the config (checked at start too).
    pub fn check_redirect_target(&self, uri: &Url) -> Result<(), RedirectUriError> {
        if self.is_static {
            return redirect_uri::check_shape(uri).map(|_| ());
        }
        let native = self.metadata.application_type == Some(ApplicationType::Native);
        redirect_uri::check_for_client(uri, self.metadata.client_uri.as_ref(), native)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field(
                "encrypted_client_secret",
                &self.encrypted_client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("metadata", &self.metadata)
            .field("metadata_digest", &self.metadata_digest)
            .field("is_static", &self.is_static)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_methods_round_trip_their_keywords() {
        for method in [
            ClientAuthMethod::None,
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::ClientSecretJwt,
            ClientAuthMethod::PrivateKeyJwt,
        ] {
            assert_eq!(method.as_str().parse::<ClientAuthMethod>(), Ok(method));
        }
        let error = "magic".parse::<ClientAuthMethod>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown token_endpoint_auth_method \"magic\""
        );
    }
}
