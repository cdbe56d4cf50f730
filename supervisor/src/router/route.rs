//! The routing table of the public port (docs/architecture.md#public-routing) as a pure function of
//! the request path.
//!
//! Prefix matches (`/auth`, the compat endpoints, the well-known files) look at the path as sent,
//! because that is what the backends route on. The two safety checks (dot segments and the
//! internal `/_synapse/mas` API) look at the percent-decoded path as well, because Twisted
//! unquotes each path segment before it walks Synapse's resource tree: `/_synapse/%6Das/...`
//! reaches the same resource as `/_synapse/mas/...`.
//!
//! The safety checks are deliberately wider than what Synapse itself would route, so that a
//! proxy in front that normalises paths cannot open a way in either: they decode `%2F` before
//! splitting, skip empty segments (`//`), ignore ASCII case, and look through up to
//! [`DECODE_PASSES`] rounds of decoding (`%256Das` is `%6Das` once decoded, `mas` twice). A
//! path that still decodes further after that is refused as ambiguous.

use std::borrow::Cow;

/// Where a request goes, decided from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/` exactly: the front page, answered by the router.
    Front,
    /// `/.well-known/change-password`: 302 to the account page's password form.
    ChangePassword,
    /// `/healthz`: answered by the router from live probes of both backends.
    Healthz,
    /// `/.well-known/matrix/client`: answered by the router.
    WellKnownClient,
    /// `/.well-known/matrix/server`: answered by the router.
    WellKnownServer,
    /// `/auth` exactly: 308 to `/auth/`.
    AuthSlash,
    /// `/auth/...`: to MAS, path unchanged.
    Mas,
    /// The compat login, logout and refresh endpoints: to MAS with `/auth` put in front.
    MasCompat,
    /// Everything else: to Synapse, path unchanged.
    Synapse,
    /// `/_synapse/mas` and below: 404. Only MAS calls it, directly on loopback.
    Blocked,
    /// A path with a `.` or `..` segment, or not starting with `/`: 400.
    BadPath,
}

/// The compat-layer prefix MAS serves under; also the prefix put in front of compat paths.
pub(crate) const MAS_PREFIX: &str = "/auth";

/// How many rounds of percent-decoding the safety checks look through: Synapse's own, and two
/// more for proxies in front that might decode as well.
const DECODE_PASSES: usize = 3;

/// Decides where a request with this path (as sent, without the query) goes.
pub(crate) fn route(path: &str) -> Route {
    if !path.starts_with('/') {
        return Route::BadPath;
    }
    if let Some(unsafe_route) = safety_check(path.as_bytes()) {
        return unsafe_route;
    }
    match path {
        "/" => Route::Front,
        "/.well-known/change-password" => Route::ChangePassword,
        "/healthz" => Route::Healthz,
        "/.well-known/matrix/client" => Route::WellKnownClient,
        "/.well-known/matrix/server" => Route::WellKnownServer,
        MAS_PREFIX => Route::AuthSlash,
        _ if path
            .strip_prefix(MAS_PREFIX)
            .is_some_and(|r| r.starts_with('/')) =>
        {
            Route::Mas
        }
        _ if is_compat(path) => Route::MasCompat,
        _ => Route::Synapse,
    }
}

/// `BadPath` for dot segments, `Blocked` for `/_synapse/mas`, on each decoding of `path`;
/// `BadPath` as well for a path that would decode more than [`DECODE_PASSES`] times.
fn safety_check(path: &[u8]) -> Option<Route> {
    let mut current = Cow::Borrowed(path);
    for _ in 0..=DECODE_PASSES {
        if let Some(route) = check_decoded(&current) {
            return Some(route);
        }
        if !current.contains(&b'%') {
            return None;
        }
        let decoded = percent_decode(&current);
        // Each escape decoded makes the path shorter: same length, nothing left to decode.
        if decoded.len() == current.len() {
            return None;
        }
        current = Cow::Owned(decoded);
    }
    // Still decoding after that many rounds: ambiguous.
    Some(Route::BadPath)
}

/// The two safety checks on one decoding of the path.
fn check_decoded(decoded: &[u8]) -> Option<Route> {
    let segments = || decoded.split(|&b| b == b'/');
    if segments().any(|s| s == b"." || s == b"..") {
        return Some(Route::BadPath);
    }
    let mut named = segments().filter(|s| !s.is_empty());
    let mut next_is = |name: &[u8]| named.next().is_some_and(|s| s.eq_ignore_ascii_case(name));
    if next_is(b"_synapse") && next_is(b"mas") {
        return Some(Route::Blocked);
    }
    None
}

/// `^/_matrix/client/(api/v1|[^/]+)/(login|logout|refresh)(/.*)?$`, written out by hand.
fn is_compat(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/_matrix/client/") else {
        return false;
    };
    if rest.strip_prefix("api/v1/").is_some_and(is_compat_endpoint) {
        return true;
    }
    match rest.split_once('/') {
        Some((version, endpoint)) => !version.is_empty() && is_compat_endpoint(endpoint),
        None => false,
    }
}

/// `^(login|logout|refresh)(/.*)?$`
fn is_compat_endpoint(rest: &str) -> bool {
    ["login", "logout", "refresh"].iter().any(|name| {
        rest.strip_prefix(name)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
    })
}

/// Decodes `%XX` escapes in one pass, leaving malformed ones as they are (like Python's
/// `urllib.parse.unquote_to_bytes`, which Twisted uses on path segments).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(input).collect()
}

#[cfg(test)]
mod tests;
