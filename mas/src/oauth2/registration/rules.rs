//! The MSC2966 rules for dynamically registered clients (docs/protocol.md#client-registration), as
//! upstream's default client-registration policy applies them:
//!
//! - `client_uri` is required, https, not a localhost name, and not a public suffix;
//! - `logo_uri`, `policy_uri` and `tos_uri` are https on the `client_uri` host or a subdomain;
//! - no URI may have a public suffix (`com`, `github.io`…) as its host;
//! - redirect URIs follow [`redirect_uri::check_for_client`]: no fragment; web clients redirect
//!   to https on the `client_uri` host or a subdomain; native clients may also use `http` on a
//!   loopback host (any port, RFC 8252 §7.3), or a private-use scheme made of the reversed
//!   `client_uri` host, optionally followed by more labels (`com.example.app:/cb` for
//!   `https://example.com`), without an authority.

use axum::http::StatusCode;
use url::Url;

use crate::error::OAuthError;
use crate::model::redirect_uri::{self, is_localhost, is_public_suffix, on_host_or_subdomain};
use crate::model::{ApplicationType, ClientMetadata};

/// Why a registration was refused (RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// `invalid_redirect_uri`.
    #[error("{0}")]
    RedirectUri(String),
    /// `invalid_client_metadata`.
    #[error("{0}")]
    Metadata(String),
}

impl From<RegistrationError> for OAuthError {
    fn from(error: RegistrationError) -> Self {
        let code = match error {
            RegistrationError::RedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::Metadata(_) => "invalid_client_metadata",
        };
        Self::new(StatusCode::BAD_REQUEST, code, error.to_string())
    }
}

/// Checks `metadata` against every rule.
pub fn validate(metadata: &ClientMetadata) -> Result<(), RegistrationError> {
    let metadata_error = |message: &str| Err(RegistrationError::Metadata(message.to_owned()));
    let Some(client_uri) = &metadata.client_uri else {
        return metadata_error("client_uri is required");
    };
    let Some(client_host) = client_uri
        .host_str()
        .filter(|_| client_uri.scheme() == "https")
    else {
        return metadata_error("client_uri must be an https URL");
    };
    if is_localhost(client_uri) {
        return metadata_error("client_uri may not be a localhost URL");
    }
    if is_public_suffix(client_uri) {
        return metadata_error("client_uri may not be a public suffix");
    }
    for (name, uri) in [
        ("logo_uri", &metadata.logo_uri),
        ("policy_uri", &metadata.policy_uri),
        ("tos_uri", &metadata.tos_uri),
    ] {
        let Some(uri) = uri else { continue };
        if uri.scheme() != "https" {
            return Err(RegistrationError::Metadata(format!("{name} must be https")));
        }
        if is_public_suffix(uri) || !on_host_or_subdomain(uri, client_host) {
            return Err(RegistrationError::Metadata(format!(
                "{name} must be on the client_uri host or a subdomain of it"
            )));
        }
    }
    for (name, uri) in [
        ("initiate_login_uri", &metadata.initiate_login_uri),
        ("jwks_uri", &metadata.jwks_uri),
    ] {
        let Some(uri) = uri else { continue };
        if uri.scheme() != "https" || is_public_suffix(uri) {
            return Err(RegistrationError::Metadata(format!(
                "{name} must be https and not a public suffix"
            )));
        }
    }
    let native = metadata.application_type == Some(ApplicationType::Native);
    for uri in &metadata.redirect_uris {
        check_redirect_uri(uri, client_uri, native)?;
    }
    Ok(())
}

fn check_redirect_uri(uri: &Url, client_uri: &Url, native: bool) -> Result<(), RegistrationError> {
    redirect_uri::check_for_client(uri, Some(client_uri), native)
        .map_err(|why| RegistrationError::RedirectUri(format!("{uri}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientAuthMethod, GrantTypes};

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn metadata(native: bool, redirect: &str) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: vec![url(redirect)],
            grant_types: GrantTypes {
                authorization_code: true,
                ..GrantTypes::default()
            },
            client_name: None,
            logo_uri: None,
            client_uri: Some(url("https://example.com/")),
            policy_uri: None,
            tos_uri: None,
            jwks_uri: None,
            jwks: None,
            id_token_signed_response_alg: None,
            userinfo_signed_response_alg: None,
            token_endpoint_auth_method: ClientAuthMethod::None,
            token_endpoint_auth_signing_alg: None,
            initiate_login_uri: None,
            application_type: Some(if native {
                ApplicationType::Native
            } else {
                ApplicationType::Web
            }),
            contacts: Vec::new(),
        }
    }

    #[test]
    fn native_clients_may_use_loopback_with_any_port_and_reversed_schemes() {
        for redirect in [
            "http://localhost/cb",
            "http://127.0.0.1:4567/cb",
            "http://[::1]:1/cb",
            "com.example:/cb",
            "com.example.app:/callback",
            "https://app.example.com/cb",
        ] {
            assert_eq!(validate(&metadata(true, redirect)), Ok(()), "{redirect}");
        }
        for redirect in [
            "com.exampleapp:/cb",
            "org.example:/cb",
            "com.example://host/cb",
            "http://example.com/cb",
            "http://127.0.0.2/cb",
            "com.example:/cb#frag",
        ] {
            assert!(
                matches!(
                    validate(&metadata(true, redirect)),
                    Err(RegistrationError::RedirectUri(_))
                ),
                "{redirect}"
            );
        }
    }

    #[test]
    fn web_clients_redirect_to_https_on_their_host() {
        assert_eq!(validate(&metadata(false, "https://example.com/cb")), Ok(()));
        assert_eq!(
            validate(&metadata(false, "https://app.example.com/cb")),
            Ok(())
        );
        for redirect in [
            "http://localhost/cb",
            "https://localhost/cb",
            "https://evil.com/cb",
            "https://notexample.com/cb",
            "com.example:/cb",
            "https://example.com/cb#x",
        ] {
            assert!(
                matches!(
                    validate(&metadata(false, redirect)),
                    Err(RegistrationError::RedirectUri(_))
                ),
                "{redirect}"
            );
        }
    }

    #[test]
    fn client_uri_must_be_https_and_not_local_or_a_suffix() {
        for client_uri in [
            None,
            Some("http://example.com/"),
            Some("https://localhost/"),
            Some("https://app.localhost/"),
            Some("https://127.0.0.1/"),
            Some("https://github.io/"),
        ] {
            let mut m = metadata(true, "http://localhost/cb");
            m.client_uri = client_uri.map(url);
            assert!(
                matches!(validate(&m), Err(RegistrationError::Metadata(_))),
                "{client_uri:?}"
            );
        }
    }

    #[test]
    fn logo_policy_and_tos_must_be_on_the_client_host() {
        let mut m = metadata(true, "http://localhost/cb");
        m.logo_uri = Some(url("https://cdn.example.com/logo.png"));
        m.policy_uri = Some(url("https://example.com/privacy"));
        m.tos_uri = Some(url("https://example.com/tos"));
        assert_eq!(validate(&m), Ok(()));
        for bad in [
            "https://other.org/logo.png",
            "http://example.com/logo.png",
            "https://com/logo.png",
        ] {
            m.logo_uri = Some(url(bad));
            assert!(
                matches!(validate(&m), Err(RegistrationError::Metadata(_))),
                "{bad}"
            );
        }
    }
}
