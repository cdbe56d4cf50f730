//! Finding a provider's endpoints: OpenID Connect discovery (`<issuer>/.well-known/openid-configuration`),
//! strictly checked in `discovery_mode: oidc`, overridden by the explicit endpoints of the
//! configuration, and falling back to those alone when discovery fails and they suffice.
//! The result is cached (an hour after a successful discovery, five minutes after a fallback,
//! so a provider that comes back is noticed).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use url::{Host, Url};

use super::fetch;
use super::{DiscoveryError, Provider, UpstreamError};
use crate::config::upstream::{DiscoveryMode, ProviderConfig};

/// How long discovered metadata is used.
const METADATA_TTL_MS: i64 = 3600 * 1000;
/// How long the explicit endpoints are used after discovery failed, before trying again.
const FALLBACK_TTL_MS: i64 = 5 * 60 * 1000;

/// The endpoints of the configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct ExplicitEndpoints {
    authorization: Option<Url>,
    token: Option<Url>,
    userinfo: Option<Url>,
    jwks_uri: Option<Url>,
}

impl ExplicitEndpoints {
    pub(super) fn from_config(config: &ProviderConfig) -> Self {
        Self {
            authorization: config.authorization_endpoint.clone(),
            token: config.token_endpoint.clone(),
            userinfo: config.userinfo_endpoint.clone(),
            jwks_uri: config.jwks_uri.clone(),
        }
    }
}

/// The endpoints in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoints {
    pub(super) authorization: Url,
    pub(super) token: Url,
    pub(super) jwks_uri: Url,
    pub(super) userinfo: Option<Url>,
    /// Whether discovery listed S256 in `code_challenge_methods_supported` (false without
    /// discovery).
    pub(super) s256_supported: bool,
}

/// Cached endpoints and until when (clock milliseconds).
#[derive(Debug)]
pub(super) struct Cached {
    endpoints: Arc<Endpoints>,
    until_ms: i64,
}

/// The discovery document: the fields we read (the rest is ignored).
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    response_types_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

impl Provider {
    /// The endpoints to use, from the cache or fetched now.
    pub(super) async fn endpoints(&self) -> Result<Arc<Endpoints>, UpstreamError> {
        let mut cache = self.metadata.lock().await;
        let now = self.clock.now_unix_ms();
        if let Some(cached) = cache.as_ref()
            && now < cached.until_ms
        {
            return Ok(cached.endpoints.clone());
        }
        let (endpoints, ttl) = match self.discovery_mode {
            DiscoveryMode::Disabled => (
                self.explicit_only()
                    .ok_or(DiscoveryError::MissingEndpoint("token_endpoint"))?,
                i64::MAX,
            ),
            mode => match self.discover(mode == DiscoveryMode::Oidc).await {
                Ok(endpoints) => {
                    self.fallback_warned.store(false, Ordering::Relaxed);
                    (endpoints, METADATA_TTL_MS)
                }
                Err(error) => {
                    let Some(endpoints) = self.explicit_only() else {
                        return Err(error);
                    };
                    if !self.fallback_warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            provider = %self.id,
                            reason = error.reason(),
                            error = %error,
                            "discovery failed; using the configured endpoints"
                        );
                    }
                    (endpoints, FALLBACK_TTL_MS)
                }
            },
        };
        let endpoints = Arc::new(endpoints);
        *cache = Some(Cached {
            endpoints: endpoints.clone(),
            until_ms: now.saturating_add(ttl),
        });
        Ok(endpoints)
    }

    /// The explicit endpoints alone, when they cover what a login needs.
    fn explicit_only(&self) -> Option<Endpoints> {
        let explicit = &self.explicit;
        let userinfo = explicit.userinfo.clone();
        if self.fetch_userinfo && userinfo.is_none() {
            return None;
        }
        Some(Endpoints {
            authorization: explicit.authorization.clone()?,
            token: explicit.token.clone()?,
            jwks_uri: explicit.jwks_uri.clone()?,
            userinfo,
            s256_supported: false,
        })
    }

    /// Fetches and checks the discovery document, then applies the explicit overrides.
    async fn discover(&self, strict: bool) -> Result<Endpoints, UpstreamError> {
        let url =
            discovery_url(&self.issuer).ok_or(DiscoveryError::InvalidUrl { field: "issuer" })?;
        let metadata: Metadata = fetch::get_json(&self.http, "discovery", &url)
            .await
            .map_err(|error| error.into_discovery_error("discovery"))?;
        Ok(check_metadata(
            &metadata,
            &self.issuer,
            &self.explicit,
            strict,
            self.fetch_userinfo,
        )?)
    }
}

/// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery §4.1: the issuer's
/// trailing slash is removed first).
pub(super) fn discovery_url(issuer: &str) -> Option<Url> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .ok()
}

/// Whether two issuers are the same, tolerating one trailing-slash difference.
pub(super) fn same_issuer(configured: &str, found: &str) -> bool {
    configured == found
        || configured.strip_suffix('/') == Some(found)
        || found.strip_suffix('/') == Some(configured)
}

/// Whether `url`'s host is loopback (`localhost`, `127.0.0.0/8`, `::1`).
pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks the document and combines it with the overrides. `strict`: the issuer must match,
/// every endpoint must be https (or on loopback), the required endpoints must be there and the
/// code flow must be listed.
fn check_metadata(
    metadata: &Metadata,
    issuer: &str,
    explicit: &ExplicitEndpoints,
    strict: bool,
    fetch_userinfo: bool,
) -> Result<Endpoints, DiscoveryError> {
    if strict {
        if !same_issuer(issuer, &metadata.issuer) {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: metadata.issuer.clone(),
            });
        }
        let issuer_url = parse("issuer", &metadata.issuer)?;
        require_secure("issuer", &issuer_url)?;
        if !metadata
            .response_types_supported
            .as_ref()
            .is_some_and(|types| types.iter().any(|t| t == "code"))
        {
            return Err(DiscoveryError::NoCodeResponseType);
        }
    }
    let pick = |field: &'static str, discovered: &Option<String>, explicit: &Option<Url>| {
        let found = discovered
            .as_deref()
            .map(|value| parse(field, value))
            .transpose()?;
        if strict && let Some(url) = &found {
            require_secure(field, url)?;
        }
        Ok::<_, DiscoveryError>(explicit.clone().or(found))
    };
    let authorization = pick(
        "authorization_endpoint",
        &metadata.authorization_endpoint,
        &explicit.authorization,
    )?
    .ok_or(DiscoveryError::MissingEndpoint("authorization_endpoint"))?;
    let token = pick("token_endpoint", &metadata.token_endpoint, &explicit.token)?
        .ok_or(DiscoveryError::MissingEndpoint("token_endpoint"))?;
    let jwks_uri = pick("jwks_uri", &metadata.jwks_uri, &explicit.jwks_uri)?
        .ok_or(DiscoveryError::MissingEndpoint("jwks_uri"))?;
    let userinfo = pick(
        "userinfo_endpoint",
        &metadata.userinfo_endpoint,
        &explicit.userinfo,
    )?;
    if fetch_userinfo && userinfo.is_none() {
        return Err(DiscoveryError::MissingEndpoint("userinfo_endpoint"));
    }
    let s256_supported = metadata
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
    Ok(Endpoints {
        authorization,
        token,
        jwks_uri,
        userinfo,
        s256_supported,
    })
}

fn parse(field: &'static str, value: &str) -> Result<Url, DiscoveryError> {
    Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or(DiscoveryError::InvalidUrl { field })
}

fn require_secure(field: &'static str, url: &Url) -> Result<(), DiscoveryError> {
    if url.scheme() == "https" || is_loopback(url) {
        Ok(())
    } else {
        Err(DiscoveryError::Insecure {
            field,
            url: url.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_match_with_one_trailing_slash_difference() {
        assert!(same_issuer("https://a.example", "https://a.example"));
        assert!(same_issuer("https://a.example/", "https://a.example"));
        assert!(same_issuer("https://a.example", "https://a.example/"));
        assert!(!same_issuer("https://a.example", "https://a.example//"));
        assert!(!same_issuer("https://a.example", "https://b.example"));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://localhost:1/",
            "http://LOCALHOST/",
            "http://127.0.0.1:8/",
            "http://127.1.2.3/",
            "http://[::1]:9/",
        ] {
            assert!(is_loopback(&url.parse().unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "http://idp.example.com/",
            "http://localhost.evil.com/",
        ] {
            assert!(!is_loopback(&url.parse().unwrap()), "{url}");
        }
    }

    #[test]
    fn discovery_url_drops_the_issuers_trailing_slash() {
        assert_eq!(
            discovery_url("https://idp.example.com/realm/")
                .unwrap()
                .as_str(),
            "https://idp.example.com/realm/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example.com").unwrap().as_str(),
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }

    fn metadata(issuer: &str) -> Metadata {
        Metadata {
            issuer: issuer.to_owned(),
            authorization_endpoint: Some(format!("{issuer}/auth")),
            token_endpoint: Some(format!("{issuer}/token")),
            jwks_uri: Some(format!("{issuer}/jwks")),
            userinfo_endpoint: Some(format!("{issuer}/me")),
            response_types_supported: Some(vec!["code".to_owned()]),
            code_challenge_methods_supported: Some(vec!["S256".to_owned()]),
        }
    }

    #[test]
    fn strict_checks_refuse_what_insecure_mode_accepts() {
        let none = ExplicitEndpoints::default();
        let issuer = "http://idp.example.com";
        let insecure = check_metadata(&metadata(issuer), issuer, &none, false, true).unwrap();
        assert!(insecure.s256_supported);
        assert!(matches!(
            check_metadata(&metadata(issuer), issuer, &none, true, true),
            Err(DiscoveryError::Insecure {
                field: "issuer",
                ..
            })
        ));

        let mut no_code = metadata("https://idp.example.com");
        no_code.response_types_supported = Some(vec!["id_token".to_owned()]);
        assert!(matches!(
            check_metadata(&no_code, "https://idp.example.com", &none, true, false),
            Err(DiscoveryError::NoCodeResponseType)
        ));
        assert!(check_metadata(&no_code, "https://idp.example.com", &none, false, false).is_ok());
    }

    #[test]
    fn a_missing_endpoint_is_fine_when_configured_explicitly() {
        let issuer = "https://idp.example.com";
        let mut meta = metadata(issuer);
        meta.jwks_uri = None;
        assert!(matches!(
            check_metadata(&meta, issuer, &ExplicitEndpoints::default(), true, false),
            Err(DiscoveryError::MissingEndpoint("jwks_uri"))
        ));
        let explicit = ExplicitEndpoints {
            jwks_uri: Some("https://keys.example.com/jwks".parse().unwrap()),
            token: Some("https://other.example.com/token".parse().unwrap()),
            ..ExplicitEndpoints::default()
        };
        let endpoints = check_metadata(&meta, issuer, &explicit, true, false).unwrap();
        assert_eq!(endpoints.jwks_uri.as_str(), "https://keys.example.com/jwks");
        assert_eq!(endpoints.token.as_str(), "https://other.example.com/token");
        assert_eq!(
            endpoints.authorization.as_str(),
            "https://idp.example.com/auth"
        );
    }

    #[test]
    fn userinfo_is_required_only_when_fetched() {
        let issuer = "https://idp.example.com";
        let mut meta = metadata(issuer);
        meta.userinfo_endpoint = None;
        let none = ExplicitEndpoints::default();
        assert!(check_metadata(&meta, issuer, &none, true, false).is_ok());
        assert!(matches!(
            check_metadata(&meta, issuer, &none, true, true),
            Err(DiscoveryError::MissingEndpoint("userinfo_endpoint"))
        ));
    }
}
