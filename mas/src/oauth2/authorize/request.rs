//! Reading and checking an authorization request (RFC 6749 §4.1.1, §3.1; OpenID Connect Core
//! §3.1.2.1; RFC 7636 §4.3; docs/protocol.md#authorization-endpoint and #redirect-uri-rules):
//! the strict query parameters, the redirect URI against the client's registration, and the
//! rest of the request into a [`NewAuthorizationGrant`]. Nothing is stored or sent from here.

use std::borrow::Cow;

use url::Url;

use crate::error::HtmlError;
use crate::extract::params::{DecodeError, decode_pairs};
use crate::model::{
    Client, CodeChallenge, CodeChallengeMethod, NewAuthorizationGrant, ResponseMode, Scope,
};

/// The request's parameters. RFC 6749 §3.1: a parameter without a value is as if omitted, and
/// none may appear twice.
pub(super) struct Params(Vec<(String, String)>);

/// A parameter appeared more than once.
pub(super) struct Repeated(&'static str);

impl Params {
    /// The query's pairs; bad percent escapes and bytes that are not UTF-8 are refused
    /// (RFC 6749 §3.1), before anything else is looked at.
    pub(super) fn parse(query: Option<&str>) -> Result<Self, DecodeError> {
        decode_pairs(query.unwrap_or_default().as_bytes()).map(Self)
    }

    pub(super) fn get(&self, name: &'static str) -> Result<Option<&str>, Repeated> {
        let mut values = self.0.iter().filter(|(key, _)| key == name);
        let first = values.next();
        if values.next().is_some() {
            return Err(Repeated(name));
        }
        Ok(first
            .map(|(_, value)| value.as_str())
            .filter(|v| !v.is_empty()))
    }
}

/// What `response_type` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResponseType {
    code: bool,
    id_token: bool,
}

/// An OAuth error to send back to the client.
#[derive(Debug)]
pub(super) struct ClientError {
    pub(super) error: &'static str,
    pub(super) description: Cow<'static, str>,
}

impl ClientError {
    fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_request", description)
    }
}

impl From<Repeated> for ClientError {
    fn from(Repeated(name): Repeated) -> Self {
        Self::invalid_request(format!("the {name} parameter is repeated"))
    }
}

fn parse_response_type(text: &str) -> Result<ResponseType, ClientError> {
    let mut response_type = ResponseType {
        code: false,
        id_token: false,
    };
    for value in text.split(' ').filter(|value| !value.is_empty()) {
        let seen = match value {
            "code" => std::mem::replace(&mut response_type.code, true),
            "id_token" => std::mem::replace(&mut response_type.id_token, true),
            "token" => {
                return Err(ClientError::new(
                    "unsupported_response_type",
                    "access tokens are never issued from the authorization endpoint",
                ));
            }
            _ => {
                return Err(ClientError::new(
                    "unsupported_response_type",
                    "response_type must be code, id_token or \"code id_token\"",
                ));
            }
        };
        if seen {
            return Err(ClientError::invalid_request(
                "response_type repeats a value",
            ));
        }
    }
    if !response_type.code && !response_type.id_token {
        return Err(ClientError::new(
            "unsupported_response_type",
            "response_type must be code, id_token or \"code id_token\"",
        ));
    }
    Ok(response_type)
}

/// The `prompt` values we know (OpenID Connect Core §3.1.2.1, plus `create`).
const PROMPT_VALUES: [&str; 5] = ["none", "login", "consent", "select_account", "create"];

/// The prompt values, checked: only known values, and `none` alone.
fn parse_prompt(text: Option<&str>) -> Result<Vec<&str>, ClientError> {
    let values: Vec<&str> = text
        .unwrap_or_default()
        .split(' ')
        .filter(|value| !value.is_empty())
        .collect();
    if let Some(unknown) = values.iter().find(|value| !PROMPT_VALUES.contains(value)) {
        return Err(ClientError::invalid_request(format!(
            "unsupported prompt value {unknown:?}"
        )));
    }
    if values.contains(&"none") && values.len() > 1 {
        return Err(ClientError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(values)
}

/// RFC 7636 §4.2: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_valid_code_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The PKCE rules (RFC 7636; stricter than upstream MAS for public clients: S256 is required).
fn check_pkce(
    params: &Params,
    client: &Client,
    response_type: ResponseType,
) -> Result<Option<CodeChallenge>, ClientError> {
    let challenge = params.get("code_challenge")?;
    let method = params.get("code_challenge_method")?;
    if !response_type.code && (challenge.is_some() || method.is_some()) {
        return Err(ClientError::invalid_request(
            "PKCE parameters need the code response type",
        ));
    }
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err(ClientError::invalid_request(
                "code_challenge_method without code_challenge",
            ));
        }
        if client.is_public() && response_type.code {
            return Err(ClientError::invalid_request(
                "PKCE with code_challenge_method=S256 is required for public clients",
            ));
        }
        return Ok(None);
    };
    let method = match method {
        None => CodeChallengeMethod::Plain,
        Some(method) => method.parse().map_err(|_| {
            ClientError::invalid_request("code_challenge_method must be S256 or plain")
        })?,
    };
    if client.is_public() && method != CodeChallengeMethod::S256 {
        return Err(ClientError::invalid_request(
            "public clients must use code_challenge_method=S256",
        ));
    }
    if !is_valid_code_challenge(challenge) {
        return Err(ClientError::invalid_request(
            "code_challenge must be 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~",
        ));
    }
    Ok(Some(CodeChallenge {
        challenge: challenge.to_owned(),
        method,
    }))
}

fn is_loopback_host(url: &Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// docs/protocol.md#redirect-uri-rules: an exact match with a registered URI; a registered loopback
/// URI without port matches any port (RFC 8252 §7.3); none given is fine with exactly one
/// registered.
pub(super) fn resolve_redirect_uri(
    client: &Client,
    requested: Option<&str>,
) -> Result<Url, HtmlError> {
    let registered = &client.metadata.redirect_uris;
    let Some(requested) = requested else {
        return match registered.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(HtmlError::bad_request(
                "Application not set up for sign-in",
                "This application has no registered redirect URI, so it cannot sign you in. \
                 Contact the developer of the application.",
            )),
            _ => Err(HtmlError::bad_request(
                "Invalid request from the application",
                "The application did not say where to send you back to (redirect_uri). Go back \
                 to the application and try again.",
            )),
        };
    };
    let bad_uri = || {
        HtmlError::bad_request(
            "Invalid redirect URI",
            "The application asked to send you back to an address that is not registered for \
             it, so the request was stopped. Go back to the application and try again.",
        )
    };
    let requested: Url = requested.parse().map_err(|_| bad_uri())?;
    if requested.fragment().is_some() {
        return Err(bad_uri());
    }
    if client.has_redirect_uri(&requested) {
        return Ok(requested);
    }
    let loopback_match = registered.iter().any(|uri| {
        is_loopback_host(uri)
            && uri.port().is_none()
            && uri.scheme() == requested.scheme()
            && uri.host_str() == requested.host_str()
            && uri.username() == requested.username()
            && uri.password() == requested.password()
            && uri.path() == requested.path()
            && uri.query() == requested.query()
    });
    if loopback_match {
        Ok(requested)
    } else {
        Err(bad_uri())
    }
}

pub(super) fn unknown_client() -> HtmlError {
    HtmlError::bad_request(
        "Unknown application",
        "The application that sent you here is not registered with this server. Go back to the \
         application and try again.",
    )
}

pub(super) fn repeated_page(Repeated(name): Repeated) -> HtmlError {
    HtmlError::bad_request(
        "Invalid request from the application",
        format!("The application sent the {name} parameter more than once."),
    )
}

/// The response mode errors are sent with: the requested one if valid, else the default for
/// the requested response type (fragment when it mentions a token, query otherwise).
pub(super) fn error_mode(params: &Params) -> ResponseMode {
    if let Ok(Some(mode)) = params.get("response_mode")
        && let Ok(mode) = mode.parse()
    {
        return mode;
    }
    match params.get("response_type") {
        Ok(Some(text)) if text.contains("token") => ResponseMode::Fragment,
        _ => ResponseMode::Query,
    }
}

/// OpenID Connect Core §6: request objects (`request`, `request_uri`) are not supported, nor
/// is passing registration metadata (`registration`) here.
fn refuse_unsupported(params: &Params) -> Result<(), ClientError> {
    for (name, error) in [
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
        ("registration", "registration_not_supported"),
    ] {
        if params.get(name)?.is_some() {
            return Err(ClientError::new(
                error,
                format!("the {name} parameter is not supported"),
            ));
        }
    }
    Ok(())
}

/// An ID token from the authorization endpoint needs the `openid` scope and a `nonce`
/// (OpenID Connect Core, implicit and hybrid flows).
fn check_id_token_request(scope: &Scope, nonce: Option<&str>) -> Result<(), ClientError> {
    if !scope.has_openid() {
        return Err(ClientError::invalid_request(
            "an ID token needs the openid scope",
        ));
    }
    if nonce.is_none() {
        return Err(ClientError::invalid_request(
            "a nonce is required when an ID token is returned from the authorization \
             endpoint",
        ));
    }
    Ok(())
}

/// The checked request, ready to be stored.
pub(super) fn validate(
    params: &Params,
    client: &Client,
    redirect_uri: Url,
) -> Result<NewAuthorizationGrant, ClientError> {
    let requested_mode: Option<ResponseMode> = params
        .get("response_mode")?
        .map(str::parse)
        .transpose()
        .map_err(|_| {
            ClientError::invalid_request("response_mode must be query, fragment or form_post")
        })?;
    refuse_unsupported(params)?;
    let response_type = parse_response_type(
        params
            .get("response_type")?
            .ok_or_else(|| ClientError::invalid_request("response_type is required"))?,
    )?;
    if !client.metadata.grant_types.authorization_code {
        return Err(ClientError::new(
            "unauthorized_client",
            "the client is not registered for the authorization_code grant",
        ));
    }
    let default_mode = if response_type.id_token {
        ResponseMode::Fragment
    } else {
        ResponseMode::Query
    };
    let response_mode = requested_mode.unwrap_or(default_mode);
    if response_type.id_token && response_mode == ResponseMode::Query {
        return Err(ClientError::invalid_request(
            "an ID token cannot be returned in the query",
        ));
    }
    let scope: Scope = params
        .get("scope")?
        .unwrap_or_default()
        .parse()
        .map_err(|_| ClientError::new("invalid_scope", "the scope is malformed"))?;
    let nonce = params.get("nonce")?;
    if response_type.id_token {
        check_id_token_request(&scope, nonce)?;
    }
    let prompt = parse_prompt(params.get("prompt")?)?;
    let code_challenge = check_pkce(params, client, response_type)?;
    Ok(NewAuthorizationGrant {
        client_id: client.id,
        redirect_uri,
        redirect_uri_explicit: params.get("redirect_uri")?.is_some(),
        scope,
        state: params.get("state")?.map(str::to_owned),
        nonce: nonce.map(str::to_owned),
        response_mode,
        response_type_code: response_type.code,
        response_type_id_token: response_type.id_token,
        code_challenge,
        login_hint: params.get("login_hint")?.map(str::to_owned),
        prompt: (!prompt.is_empty()).then(|| prompt.join(" ")),
    })
}
