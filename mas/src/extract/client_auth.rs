//! Form bodies of the OAuth API and client authentication at the token, revocation and
//! introspection endpoints (RFC 6749 §2.3.1, §3.2.1; methods `client_secret_basic`,
//! `client_secret_post` and `none`).
//!
//! [`ClientAuthorization`] reads the whole `application/x-www-form-urlencoded` body (bounded by
//! the router's body limit), refuses repeated parameters and bad UTF-8 (RFC 6749 §3.1), and
//! collects the client's credentials from the `Authorization: Basic` header or the form.
//! [`Credentials::authenticate`] then checks them against the stored client. Anything wrong is
//! an [`OAuthError`], never a 500. JWT client assertions (`client_secret_jwt`,
//! `private_key_jwt`) are not supported.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::params;
use crate::crypto::{Encrypter, constant_time_eq};
use crate::error::OAuthError;
use crate::model::{Client, ClientAuthMethod};
use crate::storage::clients::find_client;

/// The parameters of a form body: each name at most once, values percent-decoded. Empty
/// values count as absent (RFC 6749 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams(BTreeMap<String, String>);

impl FormParams {
    /// Parses an `application/x-www-form-urlencoded` body. Repeated names, bad percent
    /// escapes and bytes that are not UTF-8 are `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params = params::strict_params(body)?;
        // Empty values are dropped only now, so that `a=&a=x` is still a repetition.
        params.retain(|_, value| !value.is_empty());
        Ok(Self(params))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{name}`")))
    }
}

/// Whether the request says its body is `mime` (parameters such as `charset` allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(mime))
}

/// Reads the body as bytes within the router's limit: too large is 413, a broken body 400.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, OAuthError> {
    Ok(params::read_body(request, state).await?)
}

/// Reads a form body: the content type must be `application/x-www-form-urlencoded`.
pub(crate) async fn read_form<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<FormParams, OAuthError> {
    FormParams::parse(&params::read_form_body(request, state).await?)
}

// The OAuth shape of an unreadable body or malformed parameters (RFC 6749 §5.2
// `invalid_request`; 413 when the body is over the limit).
impl From<params::ParamsError> for OAuthError {
    fn from(error: params::ParamsError) -> Self {
        Self::invalid_request(error.to_string())
    }
}

impl From<params::FormError> for OAuthError {
    fn from(error: params::FormError) -> Self {
        match error {
            params::FormError::ContentType => Self::invalid_request(error.to_string()),
            params::FormError::Body(StatusCode::PAYLOAD_TOO_LARGE) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is too large",
            ),
            params::FormError::Body(_) => {
                Self::invalid_request("the request body could not be read")
            }
            params::FormError::Params(error) => error.into(),
        }
    }
}

/// What the client presented to identify itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Only a `client_id` in the form: a public client.
    None {
        /// The `client_id`.
        client_id: String,
    },
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    ClientSecretBasic {
        /// The `client_id`.
        client_id: String,
        /// The secret.
        client_secret: String,
    },
    /// `client_id` and `client_secret` in the form.
    ClientSecretPost {
        /// The `client_id`.
        client_id: String,
        /// The secret.
        client_secret: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.method())
            .field("client_id", &self.client_id())
            .finish_non_exhaustive()
    }
}

/// Why client authentication failed (all `invalid_client`, RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// No client with this id.
    #[error("unknown client")]
    UnknownClient,
    /// The client registered another authentication method.
    #[error("the client must authenticate with {expected}")]
    WrongMethod {
        /// Its registered method.
        expected: ClientAuthMethod,
    },
    /// The secret does not match.
    #[error("invalid client secret")]
    BadSecret,
    /// The database or the stored secret failed.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<ClientAuthError> for OAuthError {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::Internal(error) => OAuthError::internal(error),
            other => OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                other.to_string(),
            ),
        }
    }
}

impl Credentials {
    /// The `client_id` presented.
    pub fn client_id(&self) -> &str {
        match self {
            Self::None { client_id }
            | Self::ClientSecretBasic { client_id, .. }
            | Self::ClientSecretPost { client_id, .. } => client_id,
        }
    }

    /// The authentication method used.
    pub fn method(&self) -> ClientAuthMethod {
        match self {
            Self::None { .. } => ClientAuthMethod::None,
            Self::ClientSecretBasic { .. } => ClientAuthMethod::ClientSecretBasic,
            Self::ClientSecretPost { .. } => ClientAuthMethod::ClientSecretPost,
        }
    }

    /// Loads the client and checks the credentials against it: the method must be the one it
    /// registered, and the secret must match its stored (encrypted) one.
    pub async fn authenticate(
        &self,
        conn: &mut AnyConnection,
        encrypter: &Encrypter,
    ) -> Result<Client, ClientAuthError> {
        let id = Ulid::from_string(self.client_id()).map_err(|_| ClientAuthError::UnknownClient)?;
        let client = find_client(conn, id)
            .await
            .map_err(|error| ClientAuthError::Internal(error.into()))?
            .ok_or(ClientAuthError::UnknownClient)?;
        let expected = client.metadata.token_endpoint_auth_method;
        if expected != self.method() {
            return Err(ClientAuthError::WrongMethod { expected });
        }
        match self {
            Self::None { .. } => Ok(client),
            Self::ClientSecretBasic { client_secret, .. }
            | Self::ClientSecretPost { client_secret, .. } => {
                let stored = client
                    .encrypted_client_secret
                    .as_deref()
                    .ok_or_else(|| ClientAuthError::Internal("client has no secret".into()))?;
                let stored = encrypter
                    .decrypt(stored)
                    .map_err(|error| ClientAuthError::Internal(error.into()))?;
                if constant_time_eq(&stored, client_secret.as_bytes()) {
                    Ok(client)
                } else {
                    Err(ClientAuthError::BadSecret)
                }
            }
        }
    }
}

/// A form body with the client credentials it carries (in the form or the `Authorization`
/// header). `credentials` is `None` when the request names no client at all; a bearer
/// `Authorization` header is left to the [`Bearer`](super::bearer::Bearer) extractor.
#[derive(Debug, Clone)]
pub struct ClientAuthorization {
    /// The client's credentials, if any.
    pub credentials: Option<Credentials>,
    /// The other parameters (and `client_id`/`client_secret`, left in).
    pub form: FormParams,
}

impl<S: Send + Sync> FromRequest<S> for ClientAuthorization {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let basic = basic_credentials(request.headers())?;
        let form = read_form(request, state).await?;
        let credentials = credentials(basic, &form)?;
        Ok(Self { credentials, form })
    }
}

/// The `client_id` and secret of an `Authorization: Basic` header; `None` without one (or
/// with another scheme). Both parts are form-urlencoded inside the base64 (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "malformed Basic authorization header",
        )
    };
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let (id, secret) = decoded
        .iter()
        .position(|&byte| byte == b':')
        .map(|at| (&decoded[..at], &decoded[at + 1..]))
        .ok_or_else(bad)?;
    let id = super::params::decode(id).map_err(|_| bad())?;
    let secret = super::params::decode(secret).map_err(|_| bad())?;
    Ok(Some((id, secret)))
}

/// Combines the header and the form into one set of credentials. Using two methods at once,
/// or naming two different clients, is `invalid_request` (RFC 6749 §2.3).
fn credentials(
    basic: Option<(String, String)>,
    form: &FormParams,
) -> Result<Option<Credentials>, OAuthError> {
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    match basic {
        Some((client_id, client_secret)) => {
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use only one client authentication method",
                ));
            }
            if form_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Authorization header",
                ));
            }
            Ok(Some(Credentials::ClientSecretBasic {
                client_id,
                client_secret,
            }))
        }
        None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok(Some(Credentials::ClientSecretPost {
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
            })),
            (Some(id), None) => Ok(Some(Credentials::None {
                client_id: id.to_owned(),
            })),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
            (None, None) => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let form = FormParams::parse(b"a=hello+world&b=%2F%41%c3%a9&c").unwrap();
        assert_eq!(form.get("a"), Some("hello world"));
        assert_eq!(form.get("b"), Some("/Aé"));
        assert_eq!(form.get("c"), None);
    }

    #[test]
    fn repeated_parameters_are_refused_even_when_empty() {
        for body in [&b"a=1&a=2"[..], b"a=&a=1", b"a=1&a="] {
            let error = FormParams::parse(body).unwrap_err();
            assert_eq!(error.error, "invalid_request");
        }
    }

    #[test]
    fn bad_utf8_and_broken_escapes_are_refused() {
        for body in [&b"a=%ff"[..], b"a=%zz", b"a=%4", b"a=\xff"] {
            assert!(FormParams::parse(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = FormParams::parse(b"a=&b=1").unwrap();
        assert_eq!(form.get("a"), None);
        assert!(form.require("a").is_err());
        assert_eq!(form.require("b").unwrap(), "1");
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = STANDARD.encode("my%20client:s%3Acret+x");
        let basic = basic_credentials(&headers(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(basic, Some(("my client".to_owned(), "s:cret x".to_owned())));
        assert_eq!(basic_credentials(&headers("Bearer x")).unwrap(), None);
        assert!(basic_credentials(&headers("Basic !!!")).is_err());
        let no_colon = STANDARD.encode("nocolon");
        assert!(basic_credentials(&headers(&format!("Basic {no_colon}"))).is_err());
    }

    #[test]
    fn two_methods_or_two_ids_are_refused() {
        let basic = Some(("a".to_owned(), "s".to_owned()));
        let with_secret = FormParams::parse(b"client_secret=s").unwrap();
        assert!(credentials(basic.clone(), &with_secret).is_err());
        let other_id = FormParams::parse(b"client_id=b").unwrap();
        assert!(credentials(basic.clone(), &other_id).is_err());
        let same_id = FormParams::parse(b"client_id=a").unwrap();
        assert_eq!(
            credentials(basic, &same_id).unwrap().unwrap().method(),
            ClientAuthMethod::ClientSecretBasic
        );
        let secret_only = FormParams::parse(b"client_secret=s").unwrap();
        assert!(credentials(None, &secret_only).is_err());
        let none = FormParams::parse(b"client_id=a").unwrap();
        assert_eq!(
            credentials(None, &none).unwrap().unwrap().method(),
            ClientAuthMethod::None
        );
        assert_eq!(credentials(None, &FormParams::default()).unwrap(), None);
    }
}
