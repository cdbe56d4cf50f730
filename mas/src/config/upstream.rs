//! `upstream_oauth2`: upstream OpenID Connect providers people log in with
//! (docs/protocol.md#upstream-login; upstream MAS's key names so upstream's documentation carries
//! over). Providers live in the configuration only; `crate::upstream::UpstreamProviders` turns them
//! into runtime objects.
//!
//! ```yaml
//! upstream_oauth2:
//!   providers:
//!     - id: 01J00000000000000000PR0V1D       # a ULID; part of the callback URL
//!       issuer: "https://my.example.com"
//!       human_name: "Example"
//!       client_id: "…"
//!       client_secret_file: /path/to/secret   # or client_secret: "…"
//!       scope: "openid profile email"
//!       fetch_userinfo: true
//!       claims_imports:
//!         localpart: { action: require, template: "{{ user.preferred_username }}" }
//!         displayname: { action: force }
//!         email: { action: force }
//!         skip_confirmation: true
//! ```
//!
//! This file holds the types and their serde, and the client secret's loading; what we do not
//! support is refused by [`validate`] (in `validate.rs`) with a message, not ignored:
//! `client_secret_jwt`, `private_key_jwt` and `sign_in_with_apple` client authentication,
//! signed userinfo, back-channel logout actions other than `do_nothing`, and registration
//! tokens for upstream registrations.

use std::collections::BTreeMap;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use url::Url;

use super::{REDACTED, SecretError, secret};

mod validate;

pub(crate) use self::validate::validate;

/// The `upstream_oauth2` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamOAuth2Config {
    /// The providers, in the order the login page shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderConfig>,
}

impl UpstreamOAuth2Config {
    /// Whether there is nothing configured (the section is left out of dumps then).
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// One upstream OpenID Connect provider. `Debug` shows `<redacted>` for the client secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's id: a ULID, part of the callback URL
    /// (`<public_base>upstream/callback/<id>`), which is registered at the provider.
    pub id: String,
    /// Whether people may log in with it (default true). A disabled provider is kept in the
    /// file but offered nowhere and refused at the callback.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Synapse's `auth_provider` for this provider (`oidc` or `oidc-<idp_id>`), used by syn2mas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse_idp_id: Option<String>,
    /// The issuer: discovery is fetched from `<issuer>/.well-known/openid-configuration`, and
    /// ID tokens must carry it as `iss` (one trailing-slash difference is tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The name on the login button (default: the issuer's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_name: Option<String>,
    /// A brand for the button's icon: apple, google, facebook, github, gitlab, twitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_name: Option<String>,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// File holding the client secret (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<Utf8PathBuf>,
    /// How we authenticate at the token endpoint (default `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_method: TokenAuthMethod,
    /// Signing algorithm for JWT client authentication (not supported; must be unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// The algorithm ID tokens are signed with: `RS256` (default) or `ES256`.
    #[serde(default = "default_id_token_alg")]
    pub id_token_signed_response_alg: String,
    /// Signed userinfo answers (not supported; must be unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// The scope asked for; must contain `openid` (default `openid`).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// How endpoints are found: `oidc` (default: discovery, strictly checked: the document's
    /// `issuer` must be this one, the authorization, token and JWKS endpoints must be there,
    /// `code` must be a supported response type, and every endpoint must be https except on
    /// loopback hosts `localhost`, `127.0.0.0/8`, `::1`, for development and tests), `insecure`
    /// (discovery, unchecked) or `disabled` (only the endpoints given here). When discovery
    /// fails and the explicit endpoints cover a login, they are used (with one warning).
    #[serde(default)]
    pub discovery_mode: DiscoveryMode,
    /// PKCE: `auto` (default: S256 when discovery lists it), `always`, `never`.
    #[serde(default)]
    pub pkce_method: PkceMethod,
    /// Whether to fetch the userinfo endpoint after the token exchange (default false); its
    /// claims override the ID token's.
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// Overrides the discovered authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<Url>,
    /// Overrides the discovered token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<Url>,
    /// Overrides the discovered userinfo endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<Url>,
    /// Overrides the discovered JWKS location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Url>,
    /// How the provider sends the answer back: `query` or `form_post`; unset sends no
    /// `response_mode` (the provider's default, `query` for the code flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<ResponseMode>,
    /// Extra authorization parameters; values are minijinja templates, empty results are
    /// dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_authorization_parameters: BTreeMap<String, String>,
    /// Pass the login page's `login_hint` on to the provider (default false).
    #[serde(default)]
    pub forward_login_hint: bool,
    /// What a back-channel logout does; only `do_nothing` (the default) is supported.
    #[serde(default)]
    pub on_backchannel_logout: BackchannelLogout,
    /// Registration tokens for upstream registrations (not supported; must be false).
    #[serde(default)]
    pub registration_token_required: bool,
    /// How claims become the local account's attributes.
    #[serde(default)]
    pub claims_imports: ClaimsImportsConfig,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            id,
            enabled,
            synapse_idp_id,
            issuer,
            human_name,
            brand_name,
            client_id,
            client_secret,
            client_secret_file,
            token_endpoint_auth_method,
            token_endpoint_auth_signing_alg,
            id_token_signed_response_alg,
            userinfo_signed_response_alg,
            scope,
            discovery_mode,
            pkce_method,
            fetch_userinfo,
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            jwks_uri,
            response_mode,
            additional_authorization_parameters,
            forward_login_hint,
            on_backchannel_logout,
            registration_token_required,
            claims_imports,
        } = self;
        f.debug_struct("ProviderConfig")
            .field("id", id)
            .field("enabled", enabled)
            .field("synapse_idp_id", synapse_idp_id)
            .field("issuer", issuer)
            .field("human_name", human_name)
            .field("brand_name", brand_name)
            .field("client_id", client_id)
            .field("client_secret", &client_secret.as_ref().map(|_| REDACTED))
            .field("client_secret_file", client_secret_file)
            .field("token_endpoint_auth_method", token_endpoint_auth_method)
            .field(
                "token_endpoint_auth_signing_alg",
                token_endpoint_auth_signing_alg,
            )
            .field("id_token_signed_response_alg", id_token_signed_response_alg)
            .field("userinfo_signed_response_alg", userinfo_signed_response_alg)
            .field("scope", scope)
            .field("discovery_mode", discovery_mode)
            .field("pkce_method", pkce_method)
            .field("fetch_userinfo", fetch_userinfo)
            .field("authorization_endpoint", authorization_endpoint)
            .field("token_endpoint", token_endpoint)
            .field("userinfo_endpoint", userinfo_endpoint)
            .field("jwks_uri", jwks_uri)
            .field("response_mode", response_mode)
            .field(
                "additional_authorization_parameters",
                additional_authorization_parameters,
            )
            .field("forward_login_hint", forward_login_hint)
            .field("on_backchannel_logout", on_backchannel_logout)
            .field("registration_token_required", registration_token_required)
            .field("claims_imports", claims_imports)
            .finish()
    }
}

fn default_true() -> bool {
    true
}

fn default_id_token_alg() -> String {
    "RS256".to_owned()
}

fn default_scope() -> String {
    "openid".to_owned()
}

/// Client authentication at the provider's token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// A public client: `client_id` in the form, no secret.
    None,
    /// HTTP Basic with the id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form.
    ClientSecretPost,
    /// Not supported.
    ClientSecretJwt,
    /// Not supported.
    PrivateKeyJwt,
    /// Not supported.
    SignInWithApple,
}

impl TokenAuthMethod {
    /// The upstream name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::SignInWithApple => "sign_in_with_apple",
        }
    }

    /// Whether we implement it.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::None | Self::ClientSecretBasic | Self::ClientSecretPost
        )
    }
}

/// How endpoints are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryMode {
    /// Discovery with strict checks (issuer, https, required endpoints).
    #[default]
    Oidc,
    /// Discovery without the checks.
    Insecure,
    /// No discovery: the explicit endpoints only.
    Disabled,
}

/// When to use PKCE (RFC 7636).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkceMethod {
    /// S256 when discovery lists it in `code_challenge_methods_supported`.
    #[default]
    Auto,
    /// Always S256.
    Always,
    /// Never.
    Never,
}

/// The `response_mode` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// A GET with the answer in the query.
    Query,
    /// A POST of an HTML form (the callback's POST route).
    FormPost,
}

impl ResponseMode {
    /// The protocol value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::FormPost => "form_post",
        }
    }
}

/// What a back-channel logout from the provider does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackchannelLogout {
    /// Nothing (the only supported value).
    #[default]
    DoNothing,
    /// Not supported.
    LogoutBrowserOnly,
    /// Not supported.
    LogoutAll,
}

/// `claims_imports`: templates over the provider's claims and what to do with the results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsImportsConfig {
    /// The stable key of the link to a local user.
    pub subject: SubjectImportConfig,
    /// Skip the confirmation page; only allowed when `localpart.action` is `require` and no
    /// attribute is `suggest`.
    pub skip_confirmation: bool,
    /// The Matrix username.
    pub localpart: LocalpartImportConfig,
    /// The display name.
    pub displayname: AttributeImportConfig,
    /// The email address (imported only when the provider says `email_verified: true`).
    pub email: AttributeImportConfig,
    /// A display-only label of the upstream account.
    pub account_name: AccountNameImportConfig,
}

/// `claims_imports.subject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectImportConfig {
    /// Default `{{ user.sub }}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// `claims_imports.localpart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalpartImportConfig {
    /// What to do with the result (default `ignore`).
    pub action: ImportAction,
    /// Default `{{ user.preferred_username }}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// When a local user already has this localpart: `fail` (default), `add`, `replace`, `set`.
    pub on_conflict: OnConflict,
}

/// `claims_imports.displayname` and `claims_imports.email`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeImportConfig {
    /// What to do with the result (default `ignore`).
    pub action: ImportAction,
    /// Default `{{ user.name }}` (display name) or `{{ user.email }}` (email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// `claims_imports.account_name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountNameImportConfig {
    /// No default: without a template there is no label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// What to do with an imported attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    /// Not imported.
    #[default]
    Ignore,
    /// Pre-filled; the person may change it.
    Suggest,
    /// Imported when present.
    Force,
    /// Imported; the login fails when it is missing.
    Require,
}

/// What to do when the localpart belongs to an existing local user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Refuse the login.
    #[default]
    Fail,
    /// Link to that user even if it has a link for this provider.
    Add,
    /// Replace that user's link for this provider.
    Replace,
    /// Link only if that user has no link for this provider.
    Set,
}

/// Why a provider's client secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSecretError {
    /// A public client (`none`) has a secret.
    #[error("a provider with token_endpoint_auth_method none may not have a client secret")]
    SecretOnPublicClient,
    /// Missing, unreadable or empty.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl ProviderConfig {
    /// The id as a ULID.
    pub fn ulid(&self) -> Option<Ulid> {
        Ulid::from_string(&self.id).ok()
    }

    /// The client secret: required for the `client_secret_*` methods, refused for `none`.
    pub fn load_client_secret(&self) -> Result<Option<String>, ProviderSecretError> {
        let secret = secret::read_optional(
            "client_secret",
            self.client_secret.as_deref(),
            self.client_secret_file.as_deref(),
        )?;
        match (self.token_endpoint_auth_method, secret) {
            (TokenAuthMethod::None, Some(_)) => Err(ProviderSecretError::SecretOnPublicClient),
            (TokenAuthMethod::None, None) => Ok(None),
            (_, None) => Err(SecretError::Missing("client_secret").into()),
            (_, Some(secret)) if secret.is_empty() => {
                Err(SecretError::Invalid("the client secret is empty".to_owned()).into())
            }
            (_, Some(secret)) => Ok(Some(secret)),
        }
    }
}

/// Replaces inline secrets with a placeholder.
pub(crate) fn redact(config: &mut UpstreamOAuth2Config) {
    for provider in &mut config.providers {
        if provider.client_secret.is_some() {
            provider.client_secret = Some(REDACTED.to_owned());
        }
    }
}

#[cfg(test)]
mod tests;
