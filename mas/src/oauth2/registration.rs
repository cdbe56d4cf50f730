//! `POST /oauth2/registration`: dynamic client registration (RFC 7591, OpenID Connect Dynamic
//! Client Registration; MSC2966 for the rules in [`rules`]; docs/protocol.md#client-registration).
//! The JSON body is normalized into [`ClientMetadata`], checked, and stored; the answer is **201**
//! with the `client_id` and the normalized metadata.
//!
//! Secret-based clients get a fresh 20-character secret (stored encrypted). Public clients
//! (`none`) with identical metadata are deduplicated: the SHA-256 of their normalized
//! metadata is unique in the database, and a second identical registration gets the first
//! `client_id` back. Unknown members and localized variants (`client_name#fr`) are accepted
//! and ignored (RFC 7591 §2). JWT client authentication is not supported, so
//! `client_secret_jwt` and `private_key_jwt` are refused.

pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use url::Url;

use self::rules::RegistrationError;
use crate::app::AppState;
use crate::clock::Clock;
use crate::crypto::keystore::Keystore;
use crate::crypto::{Encrypter, random, sha256_hex};
use crate::error::OAuthError;
use crate::extract::client_auth::{has_content_type, read_body};
use crate::extract::client_ip::ClientIp;
use crate::model::{ApplicationType, Client, ClientAuthMethod, ClientMetadata, GrantTypes};
use crate::ratelimit::RateLimiter;
use crate::rng::RngSource;
use crate::storage::{Database, StorageError, clients};

/// The grant type names of RFC 7591 §2 we know.
const AUTHORIZATION_CODE: &str = "authorization_code";
const REFRESH_TOKEN: &str = "refresh_token";
const CLIENT_CREDENTIALS: &str = "client_credentials";
const DEVICE_CODE: &str = crate::oauth2::discovery::DEVICE_CODE_GRANT_TYPE;
const IMPLICIT: &str = "implicit";

/// The registration request: the members we read; everything else is ignored.
#[derive(Debug, Deserialize)]
struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    application_type: Option<String>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    token_endpoint_auth_method: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    id_token_signed_response_alg: Option<String>,
    userinfo_signed_response_alg: Option<String>,
    initiate_login_uri: Option<String>,
    contacts: Option<Vec<String>>,
}

/// The answer (RFC 7591 §3.2.1): credentials and the normalized metadata.
#[derive(Debug, Serialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    client_id_issued_at: i64,
    /// 0: the secret does not expire (required whenever a secret is issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    #[serde(flatten)]
    metadata: BTreeMap<&'static str, serde_json::Value>,
}

/// What registration uses of the application state.
#[derive(Debug, Clone)]
pub(crate) struct RegistrationState {
    db: Database,
    clock: Arc<dyn Clock>,
    rng: RngSource,
    /// Client secrets are stored encrypted.
    encrypter: Encrypter,
    /// The per-address registration limit.
    limiter: RateLimiter,
    /// The algorithms clients may ask ID tokens and userinfo to be signed with.
    keystore: Arc<Keystore>,
}

impl FromRef<AppState> for RegistrationState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            encrypter: state.encrypter.clone(),
            limiter: state.limiter.clone(),
            keystore: state.keystore.clone(),
        }
    }
}

/// `POST /oauth2/registration`. Anyone may register, so registrations are rate-limited per
/// client address before anything is read
/// ([`CLIENT_REGISTRATION_PER_IP`](crate::ratelimit::Quota::CLIENT_REGISTRATION_PER_IP)):
/// 429 with `Retry-After` and `invalid_request` (RFC 7591 §3.2.2 has no code for it, and
/// upstream MAS has no such limit to copy from).
#[tracing::instrument(name = "handlers.oauth2.registration.post", skip_all)]
pub(crate) async fn post(
    State(state): State<RegistrationState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, OAuthError> {
    let now = state.clock.now_unix_ms();
    if let Err(limited) = state.limiter.check_client_registration(ip, now) {
        tracing::info!(client.ip = ?ip, "client registration refused: too many from this address");
        let error = OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            format!(
                "too many client registrations from this address; retry in {} s",
                limited.retry_after_secs()
            ),
        );
        return Ok(limited.respond(error));
    }
    if !has_content_type(request.headers(), "application/json") {
        return Err(OAuthError::invalid_request(
            "the body must be application/json",
        ));
    }
    let body = read_body(request, &()).await?;
    let request: RegistrationRequest = serde_json::from_slice(&body)
        .map_err(|error| RegistrationError::Metadata(format!("malformed registration: {error}")))?;
    let signable: Vec<&str> = (state.keystore.algorithms().into_iter())
        .map(|alg| alg.as_str())
        .collect();
    let metadata = normalize(request, &signable)?;
    rules::validate(&metadata)?;

    let mut rng = state.rng.fork();
    let clock = state.clock.as_ref();
    let public = metadata.token_endpoint_auth_method == ClientAuthMethod::None;
    let digest = public.then(|| metadata_digest(&metadata));
    let secret = (!public).then(|| random::client_secret(&mut rng));
    let encrypted = secret
        .as_ref()
        .map(|secret| state.encrypter.encrypt(&mut rng, secret.as_bytes()));

    let mut conn = state.db.acquire().await?;
    let client = store_client(&mut conn, clock, &mut rng, metadata, encrypted, digest).await?;
    let mut response = (StatusCode::CREATED, Json(response(&client, secret))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Stores the client, or for a public client whose metadata `digest` is already known, returns
/// the stored one (also when a concurrent identical registration wins the race).
async fn store_client(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    metadata: ClientMetadata,
    encrypted: Option<String>,
    digest: Option<String>,
) -> Result<Client, OAuthError> {
    let existing = match &digest {
        Some(digest) => clients::find_client_by_metadata_digest(conn, digest).await?,
        None => None,
    };
    if let Some(client) = existing {
        return Ok(client);
    }
    let added = clients::add_client(conn, clock, rng, encrypted, metadata, digest.clone()).await;
    match (added, &digest) {
        (Ok(client), _) => {
            tracing::info!(oauth2_client.id = %client.id, "client registered");
            Ok(client)
        }
        // Registered by a concurrent request a moment ago.
        (Err(StorageError::DuplicateClientMetadata), Some(digest)) => {
            clients::find_client_by_metadata_digest(conn, digest)
                .await?
                .ok_or_else(|| OAuthError::internal("deduplicated client vanished"))
        }
        (Err(error), _) => Err(OAuthError::internal(error)),
    }
}

/// Applies the defaults of RFC 7591 §2 and turns the request into [`ClientMetadata`],
/// refusing values we do not support. `signable` lists the algorithms the keystore signs with.
fn normalize(
    request: RegistrationRequest,
    signable: &[&str],
) -> Result<ClientMetadata, RegistrationError> {
    let auth_method = auth_method(request.token_endpoint_auth_method.as_deref())?;
    let application_type = match request.application_type.as_deref() {
        None => ApplicationType::Web,
        Some(name) => name
            .parse()
            .map_err(|_| metadata_error(format!("unknown application_type {name:?}")))?,
    };
    let (grant_types, implicit) = grant_types(request.grant_types.as_deref())?;
    check_response_types(request.response_types.as_deref(), grant_types, implicit)?;
    let redirect_uris = request
        .redirect_uris
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|uri| {
            Url::parse(uri)
                .map_err(|_| RegistrationError::RedirectUri(format!("{uri:?} is not a URL")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if (grant_types.authorization_code || implicit) && redirect_uris.is_empty() {
        return Err(RegistrationError::RedirectUri(
            "at least one redirect URI is required".to_owned(),
        ));
    }
    if grant_types.client_credentials && auth_method == ClientAuthMethod::None {
        return Err(metadata_error(
            "client_credentials needs a confidential client".to_owned(),
        ));
    }
    if request.jwks.is_some() && request.jwks_uri.is_some() {
        return Err(metadata_error(
            "jwks and jwks_uri are mutually exclusive".to_owned(),
        ));
    }
    check_algorithms(&request, signable)?;
    Ok(ClientMetadata {
        redirect_uris,
        grant_types,
        client_name: request.client_name,
        logo_uri: optional_url("logo_uri", request.logo_uri)?,
        client_uri: optional_url("client_uri", request.client_uri)?,
        policy_uri: optional_url("policy_uri", request.policy_uri)?,
        tos_uri: optional_url("tos_uri", request.tos_uri)?,
        jwks_uri: optional_url("jwks_uri", request.jwks_uri)?,
        jwks: request.jwks,
        id_token_signed_response_alg: request.id_token_signed_response_alg,
        userinfo_signed_response_alg: request.userinfo_signed_response_alg,
        token_endpoint_auth_method: auth_method,
        token_endpoint_auth_signing_alg: request.token_endpoint_auth_signing_alg,
        initiate_login_uri: optional_url("initiate_login_uri", request.initiate_login_uri)?,
        application_type: Some(application_type),
        contacts: request.contacts.unwrap_or_default(),
    })
}

fn metadata_error(message: String) -> RegistrationError {
    RegistrationError::Metadata(message)
}

/// `token_endpoint_auth_method`, `client_secret_basic` by default; the JWT methods are not
/// supported.
fn auth_method(name: Option<&str>) -> Result<ClientAuthMethod, RegistrationError> {
    let auth_method = match name {
        None => ClientAuthMethod::ClientSecretBasic,
        Some(name) => name
            .parse()
            .map_err(|_| metadata_error(format!("unknown token_endpoint_auth_method {name:?}")))?,
    };
    if matches!(
        auth_method,
        ClientAuthMethod::ClientSecretJwt | ClientAuthMethod::PrivateKeyJwt
    ) {
        return Err(metadata_error(format!(
            "token_endpoint_auth_method {auth_method} is not supported"
        )));
    }
    Ok(auth_method)
}

/// The registered grant types (`authorization_code` by default), and whether `implicit` was
/// among them (it is only remembered, for the `id_token` response type).
fn grant_types(names: Option<&[String]>) -> Result<(GrantTypes, bool), RegistrationError> {
    let mut grant_types = GrantTypes::default();
    let mut implicit = false;
    for name in names.unwrap_or(&[AUTHORIZATION_CODE.to_owned()]) {
        match name.as_str() {
            AUTHORIZATION_CODE => grant_types.authorization_code = true,
            REFRESH_TOKEN => grant_types.refresh_token = true,
            CLIENT_CREDENTIALS => grant_types.client_credentials = true,
            IMPLICIT => implicit = true,
            DEVICE_CODE => grant_types.device_code = true,
            other => return Err(metadata_error(format!("unsupported grant type {other:?}"))),
        }
    }
    Ok((grant_types, implicit))
}

/// Each response type must be one we know, with its grant type registered. Left out, it is
/// `code` (RFC 7591 §2) for a client that registers `authorization_code`, and none for one that
/// does not (a device-only client, as matrix-sdk registers for QR login, sends no
/// `response_types`).
fn check_response_types(
    response_types: Option<&[String]>,
    grant_types: GrantTypes,
    implicit: bool,
) -> Result<(), RegistrationError> {
    let default = if grant_types.authorization_code {
        vec!["code".to_owned()]
    } else {
        Vec::new()
    };
    for response_type in response_types.unwrap_or(&default) {
        let mut parts: Vec<&str> = response_type.split(' ').filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["code"] | ["code", "id_token"] if grant_types.authorization_code => {}
            ["id_token"] if implicit => {}
            ["code"] | ["code", "id_token"] | ["id_token"] => {
                return Err(metadata_error(format!(
                    "response type {response_type:?} needs its grant type"
                )));
            }
            _ => {
                return Err(metadata_error(format!(
                    "unsupported response type {response_type:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The ID token and userinfo algorithms must be ones we sign with; the token endpoint's may
/// not be `none`.
fn check_algorithms(
    request: &RegistrationRequest,
    signable: &[&str],
) -> Result<(), RegistrationError> {
    for (name, alg) in [
        (
            "id_token_signed_response_alg",
            &request.id_token_signed_response_alg,
        ),
        (
            "userinfo_signed_response_alg",
            &request.userinfo_signed_response_alg,
        ),
    ] {
        if let Some(alg) = alg
            && !signable.contains(&alg.as_str())
        {
            return Err(metadata_error(format!("{name} {alg:?} is not supported")));
        }
    }
    if request.token_endpoint_auth_signing_alg.as_deref() == Some("none") {
        return Err(metadata_error(
            "token_endpoint_auth_signing_alg may not be none".to_owned(),
        ));
    }
    Ok(())
}

/// The URL member `name`, if given.
fn optional_url(
    name: &'static str,
    value: Option<String>,
) -> Result<Option<Url>, RegistrationError> {
    value
        .map(|value| {
            Url::parse(&value).map_err(|_| metadata_error(format!("{name} {value:?} is not a URL")))
        })
        .transpose()
}

/// The metadata as registration JSON, members sorted by name (what is echoed back, and what
/// the deduplication digest is computed over).
fn metadata_json(metadata: &ClientMetadata) -> BTreeMap<&'static str, serde_json::Value> {
    use serde_json::Value;
    let mut map = BTreeMap::new();
    let grant_types = metadata.grant_types;
    let names: Vec<&str> = [
        (grant_types.authorization_code, AUTHORIZATION_CODE),
        (grant_types.refresh_token, REFRESH_TOKEN),
        (grant_types.client_credentials, CLIENT_CREDENTIALS),
        (grant_types.device_code, DEVICE_CODE),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    map.insert("grant_types", Value::from(names));
    let response_types: Vec<&str> = if grant_types.authorization_code {
        vec!["code"]
    } else {
        Vec::new()
    };
    map.insert("response_types", Value::from(response_types));
    let uris: Vec<&str> = metadata.redirect_uris.iter().map(Url::as_str).collect();
    map.insert("redirect_uris", Value::from(uris));
    map.insert(
        "token_endpoint_auth_method",
        Value::from(metadata.token_endpoint_auth_method.as_str()),
    );
    let application_type = metadata.application_type.unwrap_or(ApplicationType::Web);
    map.insert("application_type", Value::from(application_type.as_str()));
    if !metadata.contacts.is_empty() {
        map.insert("contacts", Value::from(metadata.contacts.clone()));
    }
    let texts = [
        ("client_name", metadata.client_name.as_deref()),
        (
            "id_token_signed_response_alg",
            metadata.id_token_signed_response_alg.as_deref(),
        ),
        (
            "userinfo_signed_response_alg",
            metadata.userinfo_signed_response_alg.as_deref(),
        ),
        (
            "token_endpoint_auth_signing_alg",
            metadata.token_endpoint_auth_signing_alg.as_deref(),
        ),
        ("client_uri", metadata.client_uri.as_ref().map(Url::as_str)),
        ("logo_uri", metadata.logo_uri.as_ref().map(Url::as_str)),
        ("policy_uri", metadata.policy_uri.as_ref().map(Url::as_str)),
        ("tos_uri", metadata.tos_uri.as_ref().map(Url::as_str)),
        ("jwks_uri", metadata.jwks_uri.as_ref().map(Url::as_str)),
        (
            "initiate_login_uri",
            metadata.initiate_login_uri.as_ref().map(Url::as_str),
        ),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            map.insert(name, Value::from(value));
        }
    }
    if let Some(jwks) = &metadata.jwks {
        map.insert("jwks", jwks.clone());
    }
    map
}

/// SHA-256 (hex) of the sorted, normalized registration JSON: equal for equal metadata.
fn metadata_digest(metadata: &ClientMetadata) -> String {
    let canonical = serde_json::to_string(&metadata_json(metadata)).unwrap_or_default();
    sha256_hex(&canonical)
}

fn response(client: &Client, secret: Option<String>) -> RegistrationResponse {
    RegistrationResponse {
        client_id: client.id.to_string(),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: client.created_at / 1000,
        metadata: metadata_json(&client.metadata),
    }
}

#[cfg(test)]
mod tests;
