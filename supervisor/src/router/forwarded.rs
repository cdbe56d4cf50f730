//! Which client a request came from, and the `X-Forwarded-*` headers the backends see.
//!
//! The router resolves one client address and sends exactly `X-Forwarded-For: <that ip>`, so MAS
//! and Synapse only have to trust loopback (docs/architecture.md#public-routing). An incoming
//! `X-Forwarded-For` is believed only from a trusted peer: loopback, or one of `CLOUDRON_PROXY_IP`.

use std::net::{IpAddr, SocketAddr};

use http::header::{FORWARDED, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The set of peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trust {
    proxies: Vec<IpAddr>,
}

impl Trust {
    /// Loopback plus these addresses.
    pub(crate) fn new(proxies: &[IpAddr]) -> Self {
        Self {
            proxies: proxies.iter().map(IpAddr::to_canonical).collect(),
        }
    }

    /// Whether `ip` is loopback or a configured proxy (IPv4-mapped IPv6 counts as IPv4).
    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.proxies.contains(&ip)
    }
}

/// The address of the client behind `peer`.
///
/// From a trusted peer that sent `X-Forwarded-For`, the list (all header lines, in order) is
/// walked from the right, skipping trusted addresses and entries that do not parse, and the first
/// untrusted address wins. When every parseable entry is trusted, the leftmost of them wins (as
/// nginx's `real_ip_recursive` does); when none parses, or the peer is untrusted, the peer's own
/// address.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trust: &Trust) -> IpAddr {
    let peer = peer.to_canonical();
    if !trust.is_trusted(peer) {
        return peer;
    }
    let lines: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let mut leftmost_trusted = None;
    for ip in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .filter_map(parse_entry)
    {
        if !trust.is_trusted(ip) {
            return ip;
        }
        leftmost_trusted = Some(ip);
    }
    leftmost_trusted.unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`) or in
/// brackets (`[::1]`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// Replaces the forwarding headers of a request from `peer` with the ones the backends see.
///
/// `X-Forwarded-For` becomes the one resolved client address. `X-Forwarded-Proto` and
/// `X-Forwarded-Host` are kept from a trusted peer; otherwise (or when absent) they are set from
/// this connection (plain `http`) and the request's `Host`. `Forwarded` and `X-Real-IP` are
/// always dropped, so the backends have one source of truth.
pub(crate) fn set_forwarding_headers(headers: &mut HeaderMap, peer: IpAddr, trust: &Trust) {
    let client = client_ip(peer, headers, trust);
    let trusted_peer = trust.is_trusted(peer);
    headers.remove(FORWARDED);
    headers.remove(X_REAL_IP);
    if let Ok(value) = HeaderValue::try_from(client.to_string()) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !trusted_peer || !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !trusted_peer || !headers.contains_key(X_FORWARDED_HOST) {
        match headers.get(HOST).cloned() {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use http::{HeaderMap, HeaderValue};

    use super::{Trust, client_ip, parse_entry, set_forwarding_headers};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn client_ip_follows_trust_rules() {
        let proxy = Trust::new(&[ip("10.0.0.2")]);
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer cannot spoof its address.
            ("198.51.100.9", &["203.0.113.7"], "198.51.100.9"),
            ("198.51.100.9", &["127.0.0.1"], "198.51.100.9"),
            // A trusted peer without the header is the client.
            ("10.0.0.2", &[], "10.0.0.2"),
            ("127.0.0.1", &[], "127.0.0.1"),
            // The proxy appended the real client; what the client claimed is ignored.
            ("10.0.0.2", &["203.0.113.7"], "203.0.113.7"),
            ("10.0.0.2", &["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
            // A chain of trusted proxies is skipped from the right.
            (
                "127.0.0.1",
                &["6.6.6.6, 203.0.113.7, 10.0.0.2"],
                "203.0.113.7",
            ),
            (
                "127.0.0.1",
                &["6.6.6.6", "203.0.113.7, ::1", "10.0.0.2"],
                "203.0.113.7",
            ),
            // Garbage entries are ignored.
            (
                "10.0.0.2",
                &["203.0.113.7, garbage, unknown"],
                "203.0.113.7",
            ),
            ("10.0.0.2", &["garbage"], "10.0.0.2"),
            ("10.0.0.2", &[""], "10.0.0.2"),
            ("10.0.0.2", &[" , ,"], "10.0.0.2"),
            // Ports and brackets are tolerated.
            ("10.0.0.2", &["203.0.113.7:4711"], "203.0.113.7"),
            ("10.0.0.2", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.2", &["[2001:db8::1]"], "2001:db8::1"),
            ("10.0.0.2", &["2001:db8::1"], "2001:db8::1"),
            // IPv4-mapped addresses count as IPv4, for the peer and for entries.
            ("::ffff:10.0.0.2", &["203.0.113.7"], "203.0.113.7"),
            ("10.0.0.2", &["::ffff:203.0.113.7"], "203.0.113.7"),
            ("10.0.0.2", &["::ffff:127.0.0.1"], "127.0.0.1"),
            // All entries trusted: the leftmost one.
            ("127.0.0.1", &["10.0.0.2, 127.0.0.5"], "10.0.0.2"),
        ];
        for (peer, lines, expected) in table {
            let got = client_ip(ip(peer), &xff(lines), &proxy);
            assert_eq!(got, ip(expected), "peer {peer}, X-Forwarded-For {lines:?}");
        }
    }

    #[test]
    fn client_ip_trusts_only_loopback_without_proxies() {
        let trust = Trust::new(&[]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff(&["1.2.3.4"]), &trust),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff(&["1.2.3.4"]), &trust),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("::1"), &xff(&["1.2.3.4"]), &trust),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn parse_entry_rejects_garbage() {
        for entry in [
            "",
            "unknown",
            "_hidden",
            "1.2.3",
            "1.2.3.4.5",
            "[1.2.3.4]",
            "::1]",
        ] {
            assert_eq!(parse_entry(entry), None, "{entry:?}");
        }
    }

    #[test]
    fn untrusted_peer_gets_headers_from_the_connection() {
        let mut headers = xff(&["203.0.113.7"]);
        headers.insert("host", HeaderValue::from_static("matrix.example.com"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        headers.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        headers.insert("x-real-ip", HeaderValue::from_static("1.2.3.4"));
        set_forwarding_headers(&mut headers, ip("198.51.100.9"), &Trust::new(&[]));
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "198.51.100.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "matrix.example.com");
        assert_eq!(headers["host"], "matrix.example.com");
        assert!(!headers.contains_key("forwarded"));
        assert!(!headers.contains_key("x-real-ip"));
    }

    #[test]
    fn trusted_peer_keeps_proto_and_host() {
        let mut headers = xff(&["6.6.6.6, 203.0.113.7", "10.0.0.2"]);
        headers.insert("host", HeaderValue::from_static("matrix.example.com"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("matrix.example.com"),
        );
        set_forwarding_headers(&mut headers, ip("10.0.0.2"), &Trust::new(&[ip("10.0.0.2")]));
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "matrix.example.com");
    }

    #[test]
    fn trusted_peer_without_forwarding_headers_gets_them_set() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:8000"));
        set_forwarding_headers(&mut headers, ip("127.0.0.1"), &Trust::new(&[]));
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "localhost:8000");
    }

    #[test]
    fn missing_host_removes_forwarded_host_from_untrusted_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        set_forwarding_headers(&mut headers, ip("198.51.100.9"), &Trust::new(&[]));
        assert!(!headers.contains_key("x-forwarded-host"));
    }
}
