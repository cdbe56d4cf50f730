//! The routing table of the public port (DESIGN §3) as a pure function of the request path.
//!
//! Prefix matches (`/auth`, the compat endpoints, the well-known files) look at the path as sent,
//! because that is what the backends route on. The two safety checks (dot segments and the
//! internal `/_synapse/mas` API) look at the percent-decoded path as well, because Twisted
//! unquotes each path segment before it walks Synapse's resource tree: `/_synapse/%6Das/...`
//! reaches the same resource as `/_synapse/mas/...`.

/// Where a request goes, decided from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
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

/// Decides where a request with this path (as sent, without the query) goes.
pub(crate) fn route(path: &str) -> Route {
    if !path.starts_with('/') {
        return Route::BadPath;
    }
    let decoded = percent_decode(path.as_bytes());
    let segments = || decoded.split(|&b| b == b'/');
    if segments().any(|s| s == b"." || s == b"..") {
        return Route::BadPath;
    }
    let mut named = segments().filter(|s| !s.is_empty());
    if named.next() == Some(b"_synapse") && named.next() == Some(b"mas") {
        return Route::Blocked;
    }
    match path {
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
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match input.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| (hi << 4) | lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::{Route, percent_decode, route};

    #[test]
    fn route_table_matches_design() {
        let table = [
            ("/healthz", Route::Healthz),
            ("/healthz/", Route::Synapse),
            ("/.well-known/matrix/client", Route::WellKnownClient),
            ("/.well-known/matrix/server", Route::WellKnownServer),
            ("/.well-known/matrix/support", Route::Synapse),
            ("/auth", Route::AuthSlash),
            ("/auth/", Route::Mas),
            ("/auth/.well-known/openid-configuration", Route::Mas),
            ("/auth/account/", Route::Mas),
            ("/authx", Route::Synapse),
            ("/authx/y", Route::Synapse),
            ("/_matrix/client/v3/login", Route::MasCompat),
            ("/_matrix/client/r0/login", Route::MasCompat),
            ("/_matrix/client/api/v1/login", Route::MasCompat),
            ("/_matrix/client/api/v1/refresh", Route::MasCompat),
            ("/_matrix/client/v3/logout", Route::MasCompat),
            ("/_matrix/client/v3/logout/all", Route::MasCompat),
            ("/_matrix/client/v3/refresh", Route::MasCompat),
            ("/_matrix/client/v3/login/sso/redirect", Route::MasCompat),
            (
                "/_matrix/client/v3/login/sso/redirect/01J0PR0V1D",
                Route::MasCompat,
            ),
            ("/_matrix/client/unstable/login", Route::MasCompat),
            ("/_matrix/client/v3/login/", Route::MasCompat),
            ("/_matrix/client/v3/loginx", Route::Synapse),
            ("/_matrix/client/v3/logouts", Route::Synapse),
            ("/_matrix/client//login", Route::Synapse),
            ("/_matrix/client/login", Route::Synapse),
            ("/_matrix/client/api/v2/login", Route::Synapse),
            ("/_matrix/client/v3/sync", Route::Synapse),
            ("/_matrix/client/v1/auth_metadata", Route::Synapse),
            (
                "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
                Route::Synapse,
            ),
            ("/_matrix/client/v3/%6Cogin", Route::Synapse),
            ("/_matrix/federation/v1/version", Route::Synapse),
            ("/_synapse/admin/v1/users", Route::Synapse),
            ("/_synapse/mas", Route::Blocked),
            ("/_synapse/mas/", Route::Blocked),
            ("/_synapse/mas/is_localpart_available", Route::Blocked),
            ("/_synapse/%6Das/is_localpart_available", Route::Blocked),
            ("/_synapse/%6d%61%73/x", Route::Blocked),
            ("/%5Fsynapse/mas/x", Route::Blocked),
            ("/_synapse%2Fmas/x", Route::Blocked),
            ("//_synapse//mas/x", Route::Blocked),
            ("/_synapse/masx", Route::Synapse),
            ("/_synapse/client/pick_idp", Route::Synapse),
            ("/_matrix/../_synapse/mas/x", Route::BadPath),
            ("/_matrix/client/v3/./login", Route::BadPath),
            ("/_matrix/%2e%2e/_synapse/mas", Route::BadPath),
            ("/_matrix/%2E/x", Route::BadPath),
            ("/auth/..", Route::BadPath),
            ("/a/..%2Fb", Route::BadPath),
            ("/a/...", Route::Synapse),
            ("/a/.b", Route::Synapse),
            ("/a/%ZZ/%", Route::Synapse),
            ("*", Route::BadPath),
            ("", Route::BadPath),
            ("/", Route::Synapse),
        ];
        for (path, expected) in table {
            assert_eq!(route(path), expected, "route({path:?})");
        }
    }

    #[test]
    fn percent_decode_is_one_pass_and_lenient() {
        assert_eq!(percent_decode(b"/%6Das"), b"/mas");
        assert_eq!(percent_decode(b"%252e"), b"%2e");
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%ff"), [0xff]);
    }
}
