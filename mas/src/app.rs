//! The HTTP application: [`AppState`] (every field a cheap handle) and [`build_router`],
//! which assembles the route groups a listener's resources ask for under its prefix. Areas
//! own their routes (`health::router()`, later `oauth2::router()`…); this module only merges
//! them and adds the layers shared by all.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::clock::Clock;
use crate::config::{AccountConfig, ListenerConfig, Resource, RootConfig};
use crate::crypto::encrypter::Encrypter;
use crate::crypto::keystore::Keystore;
use crate::crypto::passwords::PasswordManager;
use crate::email::Mailer;
use crate::extract::client_ip::TrustedProxies;
use crate::extract::cookies::CookieManager;
use crate::homeserver::HomeserverConnection;
use crate::jobs::JobWaker;
use crate::ratelimit::RateLimiter;
use crate::rng::RngSource;
use crate::routes::UrlBuilder;
use crate::storage::Database;
use crate::templates::Templates;
use crate::upstream::UpstreamProviders;

/// What handlers share; every field is a cheap handle. Handlers extract only the parts they
/// use (`State<Database>`, `State<Arc<Keystore>>`, ...).
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// The database pool.
    pub db: Database,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Public URLs.
    pub urls: UrlBuilder,
    /// The injected randomness (fork one generator per request).
    pub rng: RngSource,
    /// Token-signing keys (JWKS, ID tokens).
    pub keystore: Arc<Keystore>,
    /// Encrypted cookies (session, CSRF).
    pub cookies: CookieManager,
    /// Encryption of secrets at rest (client secrets).
    pub encrypter: Encrypter,
    /// Password hashing; `None` when password login is disabled.
    pub passwords: Option<Arc<PasswordManager>>,
    /// The web page templates.
    pub templates: Templates,
    /// The homeserver (Synapse's `/_synapse/mas` API, or a mock in tests).
    pub homeserver: Arc<dyn HomeserverConnection>,
    /// Wakes the job worker after a commit that queued a job.
    pub jobs: JobWaker,
    /// Rate limits (password checks, docs/protocol.md#rate-limits).
    pub limiter: RateLimiter,
    /// Settings handlers need, taken from the validated config.
    pub site: Arc<SiteConfig>,
    /// The upstream OpenID providers (`upstream_oauth2.providers`, enabled ones).
    pub upstream: UpstreamProviders,
    /// Outgoing mail (`email`); a blackhole when mail is off ([`Mailer::is_enabled`]).
    pub mailer: Arc<Mailer>,
}

/// The parts of the configuration that handlers read, in runtime form.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The Matrix server name.
    pub server_name: String,
    /// The OpenID Connect issuer (`http.issuer`, else `http.public_base`).
    pub issuer: String,
    /// The secret Synapse presents to introspect tokens (`matrix.secret`).
    pub matrix_secret: String,
    /// Lifetime of OAuth access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refreshable compatibility access tokens.
    pub compat_token_ttl: Duration,
    /// What users may do with their account.
    pub account: AccountConfig,
    /// Peers whose `X-Forwarded-For` is believed (`http.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// The terms of service registration asks people to accept (`branding.tos_uri`).
    pub tos_uri: Option<url::Url>,
}

/// Why the state could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("secrets.keys: {0}")]
    Keys(crate::config::KeyLoadError),
    #[error("secrets.encryption: {0}")]
    Encryption(crate::config::SecretError),
    #[error("matrix.secret: {0}")]
    MatrixSecret(crate::config::SecretError),
    #[error("passwords: {0}")]
    Passwords(crate::crypto::passwords::PasswordConfigError),
    #[error("{0}")]
    Templates(crate::templates::TemplateError),
    #[error("{0}")]
    Upstream(crate::upstream::UpstreamSetupError),
    #[error("email: {0}")]
    Mail(crate::email::MailError),
}

impl AppState {
    /// Builds the state from a validated configuration.
    pub fn from_config(
        config: &RootConfig,
        db: Database,
        clock: Arc<dyn Clock>,
        rng: RngSource,
        homeserver: Arc<dyn HomeserverConnection>,
    ) -> Result<Self, StateError> {
        let key = config
            .secrets
            .encryption_key()
            .map_err(StateError::Encryption)?;
        let keystore = Keystore::from_config(&config.secrets).map_err(StateError::Keys)?;
        let passwords = if config.passwords.enabled {
            Some(Arc::new(
                config
                    .passwords
                    .build_manager()
                    .map_err(StateError::Passwords)?,
            ))
        } else {
            None
        };
        let site = SiteConfig {
            server_name: config.matrix.homeserver.clone(),
            issuer: config
                .http
                .issuer
                .as_ref()
                .unwrap_or(&config.http.public_base)
                .to_string(),
            matrix_secret: config
                .matrix
                .load_secret()
                .map_err(StateError::MatrixSecret)?,
            access_token_ttl: Duration::from_secs(config.experimental.access_token_ttl),
            compat_token_ttl: Duration::from_secs(config.experimental.compat_token_ttl),
            account: config.account.clone(),
            trusted_proxies: TrustedProxies::from_config(&config.http.trusted_proxies),
            tos_uri: config.branding.tos_uri.clone(),
        };
        let upstream = UpstreamProviders::from_config(&config.upstream_oauth2, clock.clone())
            .map_err(StateError::Upstream)?;
        Ok(Self {
            db,
            clock,
            urls: UrlBuilder::new(config.http.public_base.clone()),
            rng,
            keystore: Arc::new(keystore),
            cookies: CookieManager::new(&key, &config.http.public_base),
            encrypter: Encrypter::derive(&key, "secrets-at-rest"),
            passwords,
            templates: Templates::load(&config.templates.path).map_err(StateError::Templates)?,
            homeserver,
            jobs: JobWaker::new(),
            limiter: RateLimiter::default(),
            site: Arc::new(site),
            upstream,
            mailer: Arc::new(Mailer::from_config(&config.email).map_err(StateError::Mail)?),
        })
    }
}

/// The router for one listener: the route groups of its resources, nested under its prefix;
/// anything else is 404.
pub fn build_router(state: AppState, listener: &ListenerConfig) -> Router {
    let mut routes = Router::new();
    for resource in &listener.resources {
        if let Some(mut group) = resource_router(resource) {
            if *resource == (Resource::Human {}) {
                // Pages for people: HTML error pages, then the security headers of every
                // response of the group (outermost, so rendered error pages get them too). Only
                // here: the APIs (introspection on every Synapse request) serve no HTML.
                group = group
                    .layer(middleware::from_fn_with_state(
                        state.clone(),
                        crate::error::render_html_errors,
                    ))
                    .layer(middleware::from_fn(crate::csp::security_headers));
            }
            routes = routes.merge(group);
        }
    }
    let routes = match listener.path_prefix() {
        // `nest_service`, unlike `nest`, also routes `{prefix}/` (the public base itself: the
        // index page) to the group's `/`.
        Some(prefix) => {
            Router::new().nest_service(prefix, routes.fallback(not_found).with_state(state.clone()))
        }
        None => routes,
    };
    routes
        .fallback(not_found)
        .layer(middleware::from_fn(crate::error::log_internal_errors))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The routes of one resource, `None` for those not served yet.
fn resource_router(resource: &Resource) -> Option<Router<AppState>> {
    match resource {
        Resource::Health {} => Some(crate::health::router()),
        Resource::Discovery {} => Some(crate::oauth2::discovery_router()),
        Resource::OAuth {} => Some(crate::oauth2::api_router()),
        Resource::Human {} => Some(human_router()),
        Resource::Assets { path } => Some(crate::views::assets::router(path)),
        Resource::Compat {} => Some(crate::compat::router()),
        Resource::Prometheus {} | Resource::AdminApi {} => None,
    }
}

/// The `human` resource: the pages of `views`, plus `/authorize` and the consent page from
/// `oauth2` and the legacy SSO page from `compat`, all under the page form body limit.
fn human_router() -> Router<AppState> {
    crate::views::router()
        .merge(crate::oauth2::human_router())
        .merge(crate::compat::human_router())
        .layer(DefaultBodyLimit::max(crate::pages::FORM_BODY_LIMIT))
}

/// Whether [`build_router`] serves anything for `resource` yet.
pub fn is_served(resource: &Resource) -> bool {
    resource_router(resource).is_some()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

/// One debug line per request; errors are logged where they are understood.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        "request"
    );
    response
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
