//! `GET /authorize`: the authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2; PKCE
//! RFC 7636; docs/protocol.md#authorization-endpoint and #redirect-uri-rules). Validates the
//! request, stores it as a pending grant and sends the browser on to the login page (no session) or
//! the consent page.
//!
//! Errors come in two kinds. Until the client and its redirect URI are known to be good, the
//! person gets an HTML error page: an unknown client or a bad redirect URI is never redirected
//! to, and neither is a redirect URI that breaks today's rules ([`redirect_uri`]), whenever
//! the client was stored. After that, errors go back to the client through the response mode,
//! with `state`: by redirect for a client declared in the config; for a registered client, a
//! page that names the client and offers the way back (RFC 9700 §4.11.2). Answers to
//! `prompt=none` are always redirected (OpenID Connect Core §3.1.2.6).
//!
//! [`Callback`] delivers authorization responses (errors here, codes and ID tokens from the
//! consent page) in the three response modes: `query`, `fragment` and `form_post` (a page with
//! a form and a visible "Continue" button; we serve no JavaScript).

use std::borrow::Cow;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use url::Url;

use crate::app::AppState;
use crate::auth::post_auth::{PostAuthAction, login_url};
use crate::csp::CspSources;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::params::{DecodeError, decode_pairs};
use crate::extract::session::load_session;
use crate::model::redirect_uri;
use crate::model::{
    Client, CodeChallenge, CodeChallengeMethod, NewAuthorizationGrant, ResponseMode, Scope,
    prompt_has,
};
use crate::storage::{StorageError, clients, grants};
use crate::templates::{AuthorizeErrorView, FormPostContext, FormPostParam, Templates};

/// Where and how an authorization response goes back to the client.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    /// The validated redirect URI.
    pub(crate) redirect_uri: Url,
    /// How the parameters travel.
    pub(crate) mode: ResponseMode,
    /// The client's `state`, echoed in every response.
    pub(crate) state: Option<String>,
    /// The client's name, for the `form_post` page.
    pub(crate) client_name: String,
}

impl Callback {
    /// Sends `params` (plus `state`) to the client: a 303 redirect for `query` and `fragment`,
    /// the form page for `form_post`. Never cached: it may carry a code or an ID token.
    pub(crate) fn respond(
        &self,
        templates: &Templates,
        prefix: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<Response, HtmlError> {
        self.check_target()?;
        let params = self.with_state(params);
        let response = match self.mode {
            ResponseMode::Query | ResponseMode::Fragment => {
                Redirect::to(self.url_with(&params).as_str()).into_response()
            }
            ResponseMode::FormPost => self.page(templates, prefix, params, None)?,
        };
        Ok(no_store(response))
    }

    /// Sends the OAuth error `error` with a description to the client.
    pub(crate) fn error(
        &self,
        templates: &Templates,
        prefix: &str,
        error: &'static str,
        description: &str,
    ) -> Result<Response, HtmlError> {
        self.respond(templates, prefix, error_params(error, description))
    }

    /// Tells the person that the client's request was refused, with the way back to the
    /// client (the error in its response mode) as a link or a form they choose to follow:
    /// RFC 9700 §4.11.2, so a registered client cannot use us to redirect anywhere at once.
    pub(crate) fn error_page(
        &self,
        templates: &Templates,
        prefix: &str,
        error: &'static str,
        description: &str,
    ) -> Result<Response, HtmlError> {
        self.check_target()?;
        let params = self.with_state(error_params(error, description));
        let refusal = AuthorizeErrorView {
            code: error.to_owned(),
            description: description.to_owned(),
        };
        let mut response = match self.mode {
            ResponseMode::Query | ResponseMode::Fragment => {
                let link = self.url_with(&params).to_string();
                self.page(templates, prefix, Vec::new(), Some((refusal, Some(link))))?
            }
            ResponseMode::FormPost => {
                self.page(templates, prefix, params, Some((refusal, None)))?
            }
        };
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Ok(no_store(response))
    }

    /// Defence in depth: whatever stored it, a target that could run script on our origin or
    /// reach local content is never used.
    fn check_target(&self) -> Result<(), HtmlError> {
        if redirect_uri::is_safe_target(&self.redirect_uri) {
            return Ok(());
        }
        tracing::warn!(
            redirect_uri.scheme = self.redirect_uri.scheme(),
            "authorization response not sent: unsafe redirect URI"
        );
        Err(unsafe_redirect_uri())
    }

    fn with_state(&self, mut params: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        params
    }

    /// The redirect URI with `params` in its query or fragment (by the response mode).
    fn url_with(&self, params: &[(&'static str, String)]) -> Url {
        let mut url = self.redirect_uri.clone();
        let pairs = params.iter().map(|(k, v)| (*k, v.as_str()));
        if self.mode == ResponseMode::Fragment {
            let fragment = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            url.set_fragment(Some(&fragment));
        } else {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// The page of the `form_post` mode, or of a refusal; its CSP lets the form reach the
    /// redirect URI and nothing else.
    fn page(
        &self,
        templates: &Templates,
        prefix: &str,
        params: Vec<(&'static str, String)>,
        refusal: Option<(AuthorizeErrorView, Option<String>)>,
    ) -> Result<Response, HtmlError> {
        let (error, link) = refusal.map_or((None, None), |(error, link)| (Some(error), link));
        let context = FormPostContext {
            prefix: prefix.to_owned(),
            redirect_uri: self.redirect_uri.to_string(),
            client_name: self.client_name.clone(),
            params: params
                .into_iter()
                .map(|(name, value)| FormPostParam {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            error,
            link,
        };
        let html = templates.render_form_post(&context)?;
        let mut response = Html(html).into_response();
        response
            .extensions_mut()
            .insert(CspSources::default().form_action(&self.redirect_uri));
        Ok(response)
    }
}

fn error_params(error: &'static str, description: &str) -> Vec<(&'static str, String)> {
    vec![
        ("error", error.to_owned()),
        ("error_description", description.to_owned()),
    ]
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unsafe_redirect_uri() -> HtmlError {
    HtmlError::bad_request(
        "This application cannot sign you in",
        "The address this application asked to send you back to is not allowed on this \
         server, so the request was stopped. Contact the developer of the application.",
    )
}

/// The request's parameters. RFC 6749 §3.1: a parameter without a value is as if omitted, and
/// none may appear twice.
struct Params(Vec<(String, String)>);

/// A parameter appeared more than once.
struct Repeated(&'static str);

impl Params {
    /// The query's pairs; bad percent escapes and bytes that are not UTF-8 are refused
    /// (RFC 6749 §3.1), before anything else is looked at.
    fn parse(query: Option<&str>) -> Result<Self, DecodeError> {
        decode_pairs(query.unwrap_or_default().as_bytes()).map(Self)
    }

    fn get(&self, name: &'static str) -> Result<Option<&str>, Repeated> {
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
struct ClientError {
    error: &'static str,
    description: Cow<'static, str>,
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
fn resolve_redirect_uri(client: &Client, requested: Option<&str>) -> Result<Url, HtmlError> {
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

fn unknown_client() -> HtmlError {
    HtmlError::bad_request(
        "Unknown application",
        "The application that sent you here is not registered with this server. Go back to the \
         application and try again.",
    )
}

fn repeated_page(Repeated(name): Repeated) -> HtmlError {
    HtmlError::bad_request(
        "Invalid request from the application",
        format!("The application sent the {name} parameter more than once."),
    )
}

/// The response mode errors are sent with: the requested one if valid, else the default for
/// the requested response type (fragment when it mentions a token, query otherwise).
fn error_mode(params: &Params) -> ResponseMode {
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

/// The checked request, ready to be stored.
fn validate(
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

fn internal(error: StorageError) -> HtmlError {
    HtmlError::internal(error)
}

/// `GET /authorize`.
#[tracing::instrument(name = "handlers.oauth2.authorize.get", skip_all)]
pub(crate) async fn get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, HtmlError> {
    let params = Params::parse(query.as_deref()).map_err(|error| {
        HtmlError::bad_request(
            "Invalid request from the application",
            format!("The application's request could not be read ({error})."),
        )
    })?;
    let client_id = params.get("client_id").map_err(repeated_page)?;
    let client_id = client_id
        .and_then(|id| id.parse().ok())
        .ok_or_else(unknown_client)?;
    let mut conn = state
        .db
        .pool()
        .acquire()
        .await
        .map_err(|e| internal(e.into()))?;
    let client = clients::find_client(&mut conn, client_id)
        .await
        .map_err(internal)?
        .ok_or_else(unknown_client)?;
    let requested_uri = params.get("redirect_uri").map_err(repeated_page)?;
    let redirect_uri = resolve_redirect_uri(&client, requested_uri)?;
    if let Err(why) = client.check_redirect_target(&redirect_uri) {
        tracing::warn!(
            oauth2_client.id = %client.id,
            reason = %why,
            "authorization refused: the client's redirect URI breaks the redirect URI rules"
        );
        return Err(unsafe_redirect_uri());
    }

    let prefix = state.urls.prefix().to_owned();
    let mut callback = Callback {
        redirect_uri: redirect_uri.clone(),
        mode: error_mode(&params),
        state: params.get("state").ok().flatten().map(str::to_owned),
        client_name: client.display_name(),
    };
    let request = match validate(&params, &client, redirect_uri) {
        Ok(request) => request,
        // Before the person has done anything: a registered client only gets a page with the
        // way back (RFC 9700 §4.11.2); a client from the config is trusted with a redirect.
        Err(error) if client.is_static => {
            return callback.error(&state.templates, &prefix, error.error, &error.description);
        }
        Err(error) => {
            tracing::info!(
                oauth2_client.id = %client.id,
                error = error.error,
                "authorization request refused"
            );
            return callback.error_page(&state.templates, &prefix, error.error, &error.description);
        }
    };
    callback.mode = request.response_mode;

    let session = load_session(&mut conn, &jar).await.map_err(internal)?;
    drop(conn);
    let prompt = request.prompt.as_deref();
    if prompt_has(prompt, "none") {
        // Consent is asked every time (docs/protocol.md#consent), so nothing can happen silently.
        let (error, description) = match session {
            None => ("login_required", "the user is not signed in"),
            Some(_) => ("consent_required", "the user must approve the request"),
        };
        return callback.error(&state.templates, &prefix, error, description);
    }

    let login_hint = request.login_hint.clone();
    let needs_login =
        session.is_none() || prompt_has(prompt, "login") || prompt_has(prompt, "create");
    let mut rng = state.rng.fork();
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let grant =
        grants::create_authorization_grant(&mut tx, state.clock.as_ref(), &mut rng, request)
            .await
            .map_err(internal)?;
    tx.commit().await.map_err(|e| internal(e.into()))?;
    tracing::info!(grant.id = %grant.id, oauth2_client.id = %client.id, "authorization grant created");

    let destination = if needs_login {
        // `prompt=create`: registration is not offered (yet), so the login page it is.
        let action = PostAuthAction::ContinueAuthorizationGrant { id: grant.id };
        login_url(&state.urls, Some(&action), login_hint.as_deref())
    } else {
        state.urls.relative(&crate::routes::consent(grant.id))
    };
    Ok(Redirect::to(&destination).into_response())
}

#[cfg(test)]
mod tests;
