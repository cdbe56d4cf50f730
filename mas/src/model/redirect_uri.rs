//! Where a browser may be sent back to: the redirect URI rules of RFC 6749 §3.1.2, RFC 8252
//! §7 and §8.4, and MSC2966 for dynamically registered clients. One place, used by client
//! registration, by the clients declared in the config (checked at start), by the
//! authorization endpoint before every redirect (so a client stored under older rules is
//! never redirected to), by every page that puts a client's URI into a form or a link, and by
//! the Content-Security-Policy those pages send.
//!
//! - Every redirect URI is absolute and has no fragment (RFC 6749 §3.1.2).
//! - `https` anywhere; `http` only on a loopback address for native clients (RFC 8252 §7.3).
//! - Any other scheme is a private-use scheme (RFC 8252 §7.1): a reversed domain name with at
//!   least one dot, with no authority. For a registered client it must be the reversed host of
//!   its `client_uri`, a host that itself has a dot and is not a public suffix (RFC 8252 §8.4:
//!   the scheme must be one the client's domain controls), optionally followed by more labels.
//! - Schemes that run script or reach local content (`javascript`, `data`, `vbscript`, `file`,
//!   `blob`, `about`, …) are never allowed, whatever their case: [`url::Url`] lowercases the
//!   scheme, and none of them has a dot.

use url::{Host, Url};

/// Schemes a browser treats as script or local content. None of them can pass the private-use
/// rule (no dot), but legacy SSO `redirectUrl`s, which the Matrix spec lets be any URI, are
/// checked against this list alone.
const FORBIDDEN_SCHEMES: [&str; 12] = [
    "javascript",
    "vbscript",
    "data",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "jar",
    "ws",
    "wss",
    "chrome",
];

/// Why a redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// RFC 6749 §3.1.2: the fragment is reserved for the response.
    #[error("redirect URIs may not have a fragment")]
    Fragment,
    /// A scheme that runs script or reads local content.
    #[error("the {0} scheme is never allowed")]
    ForbiddenScheme(String),
    /// Not http(s) and not a reversed domain name.
    #[error(
        "the {0} scheme is not allowed: use https, or a private-use scheme that is a reversed \
         domain name with at least one dot (com.example.app)"
    )]
    NotPrivateUse(String),
    /// http(s) without a host.
    #[error("an http(s) redirect URI needs a host")]
    NoHost,
    /// A private-use URI with `//host`.
    #[error("a private-use scheme URI may not have an authority")]
    Authority,
    /// `http` off loopback, or for a web client.
    #[error("http is only allowed for native clients on a loopback address")]
    Http,
    /// A web client redirecting to localhost.
    #[error("web clients may not redirect to localhost")]
    WebLocalhost,
    /// An https URI off the client's host.
    #[error("must be on the client_uri host or a subdomain of it")]
    OffHost,
    /// A private-use scheme for a web client.
    #[error("web clients must use https")]
    WebScheme,
    /// A private-use scheme for a client whose `client_uri` cannot own one.
    #[error(
        "a private-use scheme needs a client_uri whose host has a dot and is not a public suffix"
    )]
    NoSchemeOwner,
    /// A private-use scheme that is not the reversed `client_uri` host.
    #[error("the scheme must be the reversed client_uri host")]
    SchemeNotOwned,
}

/// What kind of target a URI that passed [`check_shape`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `http` or `https` with a host.
    Web,
    /// A private-use scheme (RFC 8252 §7.1).
    PrivateUse,
}

/// The rules every redirect target follows, whoever registered it: no fragment, and http(s)
/// with a host or a private-use scheme without an authority.
pub fn check_shape(uri: &Url) -> Result<TargetKind, RedirectUriError> {
    if uri.fragment().is_some() {
        return Err(RedirectUriError::Fragment);
    }
    let scheme = uri.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(RedirectUriError::ForbiddenScheme(scheme.to_owned()));
    }
    match scheme {
        "http" | "https" if uri.host_str().is_none_or(str::is_empty) => {
            Err(RedirectUriError::NoHost)
        }
        "http" | "https" => Ok(TargetKind::Web),
        _ if !is_private_use_scheme(scheme) => {
            Err(RedirectUriError::NotPrivateUse(scheme.to_owned()))
        }
        _ if uri.has_authority() => Err(RedirectUriError::Authority),
        _ => Ok(TargetKind::PrivateUse),
    }
}

/// Whether a browser may be sent to `uri` at all ([`check_shape`]).
pub fn is_safe_target(uri: &Url) -> bool {
    check_shape(uri).is_ok()
}

/// A legacy SSO `redirectUrl` (Matrix spec: any URI the client chooses; older mobile apps
/// use dotless schemes such as `element://connect`): anything but a forbidden scheme, and
/// http(s) only with a host.
pub fn is_safe_legacy_target(uri: &Url) -> bool {
    let scheme = uri.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return false;
    }
    !matches!(scheme, "http" | "https") || uri.host_str().is_some_and(|host| !host.is_empty())
}

/// The redirect URI rules for a dynamically registered client (MSC2966), given its
/// `client_uri` and whether it is a native application.
pub fn check_for_client(
    uri: &Url,
    client_uri: Option<&Url>,
    native: bool,
) -> Result<(), RedirectUriError> {
    let kind = check_shape(uri)?;
    let client_host = client_uri
        .filter(|client_uri| client_uri.scheme() == "https")
        .and_then(Url::host_str);
    match (kind, uri.scheme()) {
        (TargetKind::Web, "https") if is_localhost(uri) => {
            if native {
                Ok(())
            } else {
                Err(RedirectUriError::WebLocalhost)
            }
        }
        (TargetKind::Web, "https") => match client_host {
            Some(host) if !is_public_suffix(uri) && on_host_or_subdomain(uri, host) => Ok(()),
            _ => Err(RedirectUriError::OffHost),
        },
        (TargetKind::Web, _) if native && is_loopback(uri) => Ok(()),
        (TargetKind::Web, _) => Err(RedirectUriError::Http),
        (TargetKind::PrivateUse, _) if !native => Err(RedirectUriError::WebScheme),
        (TargetKind::PrivateUse, scheme) => {
            let Some(host) = client_host.filter(|host| can_own_a_scheme(host)) else {
                return Err(RedirectUriError::NoSchemeOwner);
            };
            if scheme_matches_reversed_host(scheme, host) {
                Ok(())
            } else {
                Err(RedirectUriError::SchemeNotOwned)
            }
        }
    }
}

/// The Content-Security-Policy source that lets a form reach `uri` (CSP Level 3
/// `form-action`): its origin for http(s), `scheme:` for a private-use scheme, `None` for
/// anything unsafe.
pub fn csp_source(uri: &Url) -> Option<String> {
    match check_shape(uri).ok()? {
        TargetKind::Web => Some(uri.origin().ascii_serialization()),
        TargetKind::PrivateUse => Some(format!("{}:", uri.scheme())),
    }
}

/// RFC 8252 §7.1: a private-use scheme is a reversed domain name, so it has at least one dot
/// and no empty label (RFC 3986 §3.1 already limits it to letters, digits, `+`, `-` and `.`).
fn is_private_use_scheme(scheme: &str) -> bool {
    scheme.contains('.') && scheme.split('.').all(|label| !label.is_empty())
}

/// A host whose reversed form can serve as a private-use scheme: a domain name with a dot
/// that is not a public suffix (`example.com`, not `com`, `github.io` or `javascript`).
fn can_own_a_scheme(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.contains('.')
        && host.split('.').all(|label| !label.is_empty())
        && host.parse::<std::net::IpAddr>().is_err()
        && !is_public_suffix_host(&host)
}

/// `localhost`, `*.localhost`, or a loopback IP address.
pub fn is_localhost(uri: &Url) -> bool {
    match uri.host() {
        Some(Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The loopback hosts of RFC 8252 §7.3: `localhost`, `127.0.0.1`, `[::1]`.
pub fn is_loopback(uri: &Url) -> bool {
    match uri.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// Whether the URI's host is `host` or a subdomain of it.
pub fn on_host_or_subdomain(uri: &Url, host: &str) -> bool {
    uri.host_str().is_some_and(|candidate| {
        let candidate = candidate.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        candidate == host || candidate.ends_with(&format!(".{host}"))
    })
}

/// Whether the host is exactly a suffix of the Public Suffix List (`com`, `co.uk`,
/// `github.io`). Hosts under no known rule (`localhost`, custom TLDs) are not.
pub fn is_public_suffix(uri: &Url) -> bool {
    match uri.host() {
        Some(Host::Domain(host)) => {
            is_public_suffix_host(&host.trim_end_matches('.').to_ascii_lowercase())
        }
        _ => false,
    }
}

fn is_public_suffix_host(host: &str) -> bool {
    match psl::suffix(host.as_bytes()) {
        Some(suffix) => suffix.is_known() && suffix.as_bytes().len() == host.len(),
        None => false,
    }
}

/// Whether the dot-separated labels of `scheme` start with the labels of `host` reversed:
/// `com.example.app` for `example.com` (case-insensitive, whole labels only).
fn scheme_matches_reversed_host(scheme: &str, host: &str) -> bool {
    let scheme = scheme.to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut scheme_labels = scheme.split('.');
    host.split('.')
        .rev()
        .all(|label| scheme_labels.next() == Some(label))
}

#[cfg(test)]
mod tests;
