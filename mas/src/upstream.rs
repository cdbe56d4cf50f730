//! The client side of login through upstream OpenID Connect providers
//! (docs/protocol.md#upstream-login; issue 5): [`UpstreamProviders`] holds the configured providers
//! in memory, and each [`Provider`] builds authorization URLs and completes callbacks: discovery
//! (strictly checked), the code exchange, ID-token validation against the provider's JWKS,
//! userinfo, and [`import_claims`] turning the claims into local account attributes.
//!
//! This module does no HTTP serving and no storage: the routes and the link/session tables are
//! `crate::views::upstream` and `crate::storage`. It never logs a token, a code or a secret.
//!
//! Discovery and JWKS are fetched lazily (MAS starts and serves password login while a
//! provider is down) and cached: metadata for an hour, the JWKS until an ID token names an
//! unknown `kid` (then it is refetched, at most once a minute). In `discovery_mode: oidc` every
//! discovered endpoint must be https, **except on loopback hosts** (`127.0.0.0/8`, `::1`,
//! `localhost`), for development and tests.

mod claims;
mod discovery;
mod error;
mod fetch;
mod id_token;
mod token;
mod userinfo;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use url::Url;

pub use self::claims::{ClaimsImports, Imported, ImportedClaims, import_claims};
pub use self::error::{
    ClaimsError, DiscoveryError, IdTokenError, UpstreamError, UpstreamSetupError, UserinfoError,
};
use crate::clock::Clock;
use crate::config::UpstreamOAuth2Config;
use crate::config::upstream::{
    DiscoveryMode, PkceMethod, ProviderConfig, ResponseMode, TokenAuthMethod,
};
pub use crate::config::upstream::{ImportAction, OnConflict};
use crate::crypto::JwsAlgorithm;
use crate::crypto::jwk::b64;

/// Connect timeout of every request to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Total timeout of every request to a provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The enabled providers of `upstream_oauth2.providers`, in configuration order; cheap to
/// clone. One HTTP client serves all of them.
#[derive(Clone, Debug)]
pub struct UpstreamProviders(Arc<[Arc<Provider>]>);

impl UpstreamProviders {
    /// Builds the enabled providers of a validated configuration (reads client secret files,
    /// compiles the claims templates). Nothing is fetched yet.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the agreed interface takes the clock like AppState::from_config does"
    )]
    pub fn from_config(
        config: &UpstreamOAuth2Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, UpstreamSetupError> {
        let enabled: Vec<_> = config
            .providers
            .iter()
            .enumerate()
            .filter(|(_, provider)| provider.enabled)
            .collect();
        if enabled.is_empty() {
            return Ok(Self::empty());
        }
        let http = http_client().map_err(UpstreamSetupError::Client)?;
        let providers = enabled
            .into_iter()
            .map(|(index, provider)| {
                Provider::from_config(provider, http.clone(), clock.clone())
                    .map(Arc::new)
                    .map_err(|message| UpstreamSetupError::Provider { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(providers.into()))
    }

    /// No provider.
    pub fn empty() -> Self {
        Self(Arc::new([]))
    }

    /// The enabled providers, in configuration order.
    pub fn enabled(&self) -> &[Arc<Provider>] {
        &self.0
    }

    /// Whether there is no enabled provider.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The enabled provider with this id (a disabled one is not found).
    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.0.iter().find(|provider| provider.id == id)
    }
}

/// The shared HTTP client: rustls, short timeouts, no redirects (a provider's endpoints are
/// where discovery says), and a `User-Agent` naming us.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "matrix-appliance-mas/",
            env!("CARGO_PKG_VERSION"),
            " (upstream OIDC client)"
        ))
        .build()
}

/// One upstream provider: its configuration in runtime form, and the caches of its metadata
/// and keys.
pub struct Provider {
    /// The configured id (a ULID), part of the callback URL.
    pub id: String,
    /// The name on the login button, if configured.
    pub human_name: Option<String>,
    /// A brand for the button's icon, if configured.
    pub brand_name: Option<String>,
    issuer: String,
    issuer_host: String,
    client_id: String,
    client_secret: Option<String>,
    auth_method: TokenAuthMethod,
    id_token_alg: JwsAlgorithm,
    scope: String,
    discovery_mode: DiscoveryMode,
    pkce_method: PkceMethod,
    fetch_userinfo: bool,
    explicit: discovery::ExplicitEndpoints,
    response_mode: Option<ResponseMode>,
    extra_params: Vec<(String, String)>,
    forward_login_hint: bool,
    claims: ClaimsImports,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    metadata: tokio::sync::Mutex<Option<discovery::Cached>>,
    jwks: tokio::sync::Mutex<id_token::JwksCache>,
    fallback_warned: AtomicBool,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret stays out of logs.
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("discovery_mode", &self.discovery_mode)
            .finish_non_exhaustive()
    }
}

/// What [`Provider::authorization_url`] needs from the web flow.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationParams<'a> {
    /// `<public_base>upstream/callback/<provider_id>`.
    pub redirect_uri: &'a str,
    /// The `state` (random, kept in the authorization session).
    pub state: &'a str,
    /// The `nonce` (random, kept in the authorization session).
    pub nonce: &'a str,
    /// A fresh PKCE verifier (43–128 unreserved characters); used when PKCE applies.
    pub code_verifier: &'a str,
    /// The login page's `login_hint`; forwarded only with `forward_login_hint: true`.
    pub login_hint: Option<&'a str>,
}

/// Where to send the browser.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The provider's authorization endpoint with every parameter.
    pub url: Url,
    /// Whether PKCE was used; `false`: don't keep the verifier (the callback passes `None`).
    pub pkce: bool,
}

/// What [`Provider::complete`] needs from the callback and the authorization session.
#[derive(Debug, Clone, Copy)]
pub struct CallbackParams<'a> {
    /// The same redirect URI as in the authorization request.
    pub redirect_uri: &'a str,
    /// The `code` from the callback.
    pub code: &'a str,
    /// The session's PKCE verifier, if the request used PKCE.
    pub code_verifier: Option<&'a str>,
    /// The session's nonce.
    pub nonce: &'a str,
}

/// The validated answer of a provider.
#[derive(Clone, PartialEq)]
pub struct UpstreamIdentity {
    /// The ID token as received (signature checked).
    pub id_token: String,
    /// Its claims.
    pub id_token_claims: Map<String, Value>,
    /// The userinfo answer, when `fetch_userinfo` (its `sub` equals the ID token's).
    pub userinfo: Option<Map<String, Value>>,
}

impl std::fmt::Debug for UpstreamIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamIdentity")
            .field("sub", &self.id_token_claims.get("sub"))
            .field("userinfo", &self.userinfo.is_some())
            .finish_non_exhaustive()
    }
}

impl UpstreamIdentity {
    /// The ID token's claims overlaid by the userinfo claims.
    pub fn merged(&self) -> Map<String, Value> {
        let mut merged = self.id_token_claims.clone();
        if let Some(userinfo) = &self.userinfo {
            merged.extend(userinfo.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }

    /// The provider's subject (`sub`).
    pub fn sub(&self) -> &str {
        self.id_token_claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

impl Provider {
    fn from_config(
        config: &ProviderConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        if !config.token_endpoint_auth_method.is_supported() {
            return Err(format!(
                "token_endpoint_auth_method {} is not supported",
                config.token_endpoint_auth_method.as_str()
            ));
        }
        let client_secret = config
            .load_client_secret()
            .map_err(|error| format!("client_secret: {error}"))?;
        let issuer = config
            .issuer
            .clone()
            .ok_or_else(|| "issuer: required".to_owned())?;
        let issuer_host = Url::parse(&issuer)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .ok_or_else(|| format!("issuer: {issuer:?} is not an http(s) URL"))?;
        let id_token_alg = config
            .id_token_signed_response_alg
            .parse()
            .map_err(|error| format!("id_token_signed_response_alg: {error}"))?;
        let claims = ClaimsImports::from_config(&config.claims_imports)?;
        Ok(Self {
            id: config.id.clone(),
            human_name: config.human_name.clone(),
            brand_name: config.brand_name.clone(),
            issuer,
            issuer_host,
            client_id: config.client_id.clone(),
            client_secret,
            auth_method: config.token_endpoint_auth_method,
            id_token_alg,
            scope: config.scope.clone(),
            discovery_mode: config.discovery_mode,
            pkce_method: config.pkce_method,
            fetch_userinfo: config.fetch_userinfo,
            explicit: discovery::ExplicitEndpoints::from_config(config),
            response_mode: config.response_mode,
            extra_params: claims::render_static_parameters(
                &config.additional_authorization_parameters,
            )?,
            forward_login_hint: config.forward_login_hint,
            claims,
            http,
            clock,
            metadata: tokio::sync::Mutex::new(None),
            jwks: tokio::sync::Mutex::new(id_token::JwksCache::default()),
            fallback_warned: AtomicBool::new(false),
        })
    }

    /// The name to show: `human_name`, else the issuer's host.
    pub fn display_name(&self) -> &str {
        self.human_name.as_deref().unwrap_or(&self.issuer_host)
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// How claims become account attributes (actions, `on_conflict`, `skip_confirmation`).
    pub fn claims(&self) -> &ClaimsImports {
        &self.claims
    }

    /// The `response_mode` asked for, if any (`form_post` answers arrive as a POST).
    pub fn response_mode(&self) -> Option<ResponseMode> {
        self.response_mode
    }

    /// The provider's authorization URL for one login attempt. Fetches discovery if it is not
    /// cached; PKCE (S256) per `pkce_method`.
    #[tracing::instrument(name = "upstream.authorization_url", skip_all, fields(provider = %self.id))]
    pub async fn authorization_url(
        &self,
        params: AuthorizationParams<'_>,
    ) -> Result<AuthorizationRequest, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let pkce = match self.pkce_method {
            PkceMethod::Always => true,
            PkceMethod::Never => false,
            PkceMethod::Auto => endpoints.s256_supported,
        };
        let mut url = endpoints.authorization.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", params.redirect_uri)
                .append_pair("scope", &self.scope)
                .append_pair("state", params.state)
                .append_pair("nonce", params.nonce);
            if pkce {
                query
                    .append_pair("code_challenge", &code_challenge(params.code_verifier))
                    .append_pair("code_challenge_method", "S256");
            }
            if let Some(mode) = self.response_mode {
                query.append_pair("response_mode", mode.as_str());
            }
            if self.forward_login_hint
                && let Some(hint) = params.login_hint
            {
                query.append_pair("login_hint", hint);
            }
            for (name, value) in &self.extra_params {
                query.append_pair(name, value);
            }
        }
        Ok(AuthorizationRequest { url, pkce })
    }

    /// Completes a login from the callback: exchanges the code, validates the ID token
    /// (signature, `iss`, `aud`/`azp`, `exp`/`iat`, `nonce`, `at_hash`) and fetches userinfo
    /// when configured (its `sub` must match).
    #[tracing::instrument(name = "upstream.complete", skip_all, fields(provider = %self.id))]
    pub async fn complete(
        &self,
        params: CallbackParams<'_>,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let tokens = self.exchange_code(&endpoints, &params).await?;
        let id_token_claims = self
            .validate_id_token(
                &endpoints,
                &tokens.id_token,
                &id_token::Expected {
                    access_token: &tokens.access_token,
                    code: params.code,
                    nonce: params.nonce,
                },
            )
            .await?;
        let userinfo = if self.fetch_userinfo {
            Some(
                self.fetch_userinfo(&endpoints, &tokens.access_token, &id_token_claims)
                    .await?,
            )
        } else {
            None
        };
        Ok(UpstreamIdentity {
            id_token: tokens.id_token,
            id_token_claims,
            userinfo,
        })
    }
}

/// The S256 code challenge of `verifier` (RFC 7636 §4.2).
pub(crate) fn code_challenge(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}
