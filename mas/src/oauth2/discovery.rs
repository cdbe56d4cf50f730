//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery §3, RFC 8414, MSC2965,
//! MSC4191) and `GET /.well-known/webfinger` (RFC 7033, OpenID Connect Discovery §2). Every URL
//! comes from the [`UrlBuilder`] (the public base), never from the request's `Host`: Synapse
//! fetches this document over loopback and republishes it to clients (docs/protocol.md#discovery),
//! so `issuer` and `account_management_uri` must be the public ones.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::SiteConfig;
use crate::auth::registration::RegistrationOpen;
use crate::crypto::keystore::Keystore;
use crate::error::OAuthError;
use crate::extract::params;
use crate::routes::{self, UrlBuilder};

/// The MSC4191 account-management actions we advertise (the deprecated `org.matrix.session_*`
/// names included, as upstream does).
const ACCOUNT_MANAGEMENT_ACTIONS: [&str; 8] = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.cross_signing_reset",
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
];

/// The client authentication methods the token, revocation and introspection endpoints
/// accept. Upstream also lists `client_secret_jwt` and `private_key_jwt`; we do not implement
/// client assertions, so we do not advertise them (nor their signing algorithms).
pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The device authorization grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The provider metadata (OpenID Connect Discovery 1.0, RFC 8414, MSC4191 additions).
#[derive(Debug, Serialize)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    /// RFC 8628 §4.
    device_authorization_endpoint: String,
    jwks_uri: String,
    registration_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    userinfo_endpoint: String,
    scopes_supported: [&'static str; 2],
    response_types_supported: [&'static str; 3],
    response_modes_supported: [&'static str; 3],
    grant_types_supported: [&'static str; 4],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 3],
    code_challenge_methods_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
    userinfo_signing_alg_values_supported: Vec<&'static str>,
    display_values_supported: [&'static str; 1],
    claim_types_supported: [&'static str; 1],
    claims_supported: [&'static str; 9],
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    prompt_values_supported: Vec<&'static str>,
    account_management_uri: String,
    account_management_actions_supported: [&'static str; 8],
}

impl ProviderMetadata {
    /// The document for this deployment. `create` is offered exactly when registration is
    /// open ([`RegistrationOpen`]).
    pub(crate) fn new(
        urls: &UrlBuilder,
        keystore: &Keystore,
        site: &SiteConfig,
        registration: RegistrationOpen,
    ) -> Self {
        let url = |path: &str| urls.absolute(path).to_string();
        let algorithms: Vec<&'static str> = keystore
            .algorithms()
            .into_iter()
            .map(|alg| alg.as_str())
            .collect();
        let mut prompts = vec!["login"];
        if registration.0 {
            prompts.push("create");
        }
        Self {
            issuer: site.issuer.clone(),
            authorization_endpoint: url(routes::AUTHORIZE),
            token_endpoint: url(routes::OAUTH2_TOKEN),
            device_authorization_endpoint: url(routes::OAUTH2_DEVICE),
            jwks_uri: url(routes::OAUTH2_KEYS),
            registration_endpoint: url(routes::OAUTH2_REGISTRATION),
            introspection_endpoint: url(routes::OAUTH2_INTROSPECT),
            revocation_endpoint: url(routes::OAUTH2_REVOKE),
            userinfo_endpoint: url(routes::OAUTH2_USERINFO),
            scopes_supported: ["openid", "email"],
            response_types_supported: ["code", "id_token", "code id_token"],
            response_modes_supported: ["form_post", "query", "fragment"],
            grant_types_supported: [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                DEVICE_CODE_GRANT_TYPE,
            ],
            token_endpoint_auth_methods_supported: AUTH_METHODS,
            revocation_endpoint_auth_methods_supported: AUTH_METHODS,
            introspection_endpoint_auth_methods_supported: AUTH_METHODS,
            code_challenge_methods_supported: ["plain", "S256"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algorithms.clone(),
            userinfo_signing_alg_values_supported: algorithms,
            display_values_supported: ["page"],
            claim_types_supported: ["normal"],
            claims_supported: [
                "iss",
                "sub",
                "aud",
                "iat",
                "exp",
                "nonce",
                "auth_time",
                "at_hash",
                "c_hash",
            ],
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            prompt_values_supported: prompts,
            // No query string: Synapse appends `?action=…` to it (docs/protocol.md#discovery).
            account_management_uri: url(routes::ACCOUNT),
            account_management_actions_supported: ACCOUNT_MANAGEMENT_ACTIONS,
        }
    }
}

/// `GET /.well-known/openid-configuration`.
#[tracing::instrument(name = "handlers.oauth2.discovery.get", skip_all)]
pub(crate) async fn get(
    State(urls): State<UrlBuilder>,
    State(keystore): State<Arc<Keystore>>,
    State(site): State<Arc<SiteConfig>>,
    State(registration): State<RegistrationOpen>,
) -> Json<ProviderMetadata> {
    Json(ProviderMetadata::new(&urls, &keystore, &site, registration))
}

/// The WebFinger relation that asks for the OpenID Connect issuer.
const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

#[derive(Debug, Serialize)]
struct WebFingerLink {
    rel: &'static str,
    href: String,
}

#[derive(Debug, Serialize)]
struct WebFingerResponse {
    subject: String,
    links: Vec<WebFingerLink>,
}

/// `GET /.well-known/webfinger?resource=…&rel=…`: the issuer link when the issuer relation is
/// asked for (or no `rel` at all), as a JRD.
#[tracing::instrument(name = "handlers.oauth2.webfinger.get", skip_all)]
pub async fn webfinger(State(site): State<Arc<SiteConfig>>, uri: Uri) -> Response {
    // RFC 7033 §4.1: `resource` once, `rel` any number of times; escapes are read strictly.
    let Ok(pairs) = params::decode_pairs(uri.query().unwrap_or_default().as_bytes()) else {
        return OAuthError::invalid_request("malformed query").into_response();
    };
    let mut resources = pairs.iter().filter(|(name, _)| name == "resource");
    let subject = match (resources.next(), resources.next()) {
        (Some((_, resource)), None) if !resource.is_empty() => resource.clone(),
        (Some(_), Some(_)) => {
            return OAuthError::invalid_request("parameter `resource` is repeated").into_response();
        }
        _ => return OAuthError::invalid_request("missing parameter `resource`").into_response(),
    };
    let mut rels = pairs.iter().filter(|(name, _)| name == "rel").peekable();
    let wants_issuer = rels.peek().is_none() || rels.any(|(_, rel)| rel == ISSUER_REL);
    let mut links = Vec::new();
    if wants_issuer {
        links.push(WebFingerLink {
            rel: ISSUER_REL,
            href: site.issuer.clone(),
        });
    }
    let mut response = (StatusCode::OK, Json(WebFingerResponse { subject, links })).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jrd+json"),
    );
    response
}

#[cfg(test)]
mod tests;
