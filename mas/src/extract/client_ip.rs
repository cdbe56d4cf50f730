//! The client's IP address, for rate limits and session records (docs/protocol.md#rate-limits): the
//! TCP peer, or, when the peer is one of `http.trusted_proxies`, the address it forwarded in
//! `X-Forwarded-For` (walked from the right, skipping trusted hops). In the appliance the router on
//! loopback sends exactly one `X-Forwarded-For` entry.
//!
//! The peer comes from axum's `ConnectInfo<SocketAddr>` (the server is started with it).
//! Without it (in-process tests) the address is unknown: [`ClientIp`] is `None`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::app::SiteConfig;

/// The networks whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// From `http.trusted_proxies` (validated CIDR strings; any that do not parse are
    /// skipped, `config check` reports them).
    pub fn from_config(networks: &[String]) -> Self {
        Self {
            networks: networks
                .iter()
                .filter_map(|network| crate::config::parse_cidr(network).ok())
                .collect(),
        }
    }

    /// Whether `ip` is inside one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }
}

/// The client address of a request, `None` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The address behind `peer` given these `headers`.
    pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let Some(peer) = peer.map(|peer| peer.to_canonical()) else {
            return Self(None);
        };
        if !trusted.contains(peer) {
            return Self(Some(peer));
        }
        let mut leftmost_trusted = None;
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>();
        for ip in entries
            .iter()
            .rev()
            .flat_map(|line| line.rsplit(','))
            .filter_map(parse_entry)
        {
            if !trusted.contains(ip) {
                return Self(Some(ip));
            }
            leftmost_trusted = Some(ip);
        }
        Self(Some(leftmost_trusted.unwrap_or(peer)))
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port or brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<IpAddr>().ok()
        })
        .map(|ip| ip.to_canonical())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp
where
    Arc<SiteConfig>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let site = Arc::<SiteConfig>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(Self::resolve(peer, &parts.headers, &site.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn trusted() -> TrustedProxies {
        TrustedProxies::from_config(&["127.0.0.0/8".to_owned(), "::1/128".to_owned()])
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let client = ClientIp::resolve(ip("203.0.113.9"), &forwarded(&["6.6.6.6"]), &trusted());
        assert_eq!(client, ClientIp(ip("203.0.113.9")));
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_address() {
        let headers = forwarded(&["6.6.6.6, 203.0.113.7", "127.0.0.2"]);
        let client = ClientIp::resolve(ip("127.0.0.1"), &headers, &trusted());
        assert_eq!(client, ClientIp(ip("203.0.113.7")));
    }

    #[test]
    fn a_trusted_peer_without_header_is_the_client() {
        let client = ClientIp::resolve(ip("::1"), &HeaderMap::new(), &trusted());
        assert_eq!(client, ClientIp(ip("::1")));
        let mapped = ClientIp::resolve(ip("::ffff:127.0.0.1"), &forwarded(&["junk"]), &trusted());
        assert_eq!(mapped, ClientIp(ip("127.0.0.1")));
    }

    #[test]
    fn entries_with_ports_and_brackets_parse() {
        for (entry, expected) in [
            ("198.51.100.1:4711", "198.51.100.1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("[2001:db8::2]", "2001:db8::2"),
        ] {
            let client = ClientIp::resolve(ip("127.0.0.1"), &forwarded(&[entry]), &trusted());
            assert_eq!(client, ClientIp(ip(expected)), "{entry}");
        }
    }

    #[test]
    fn no_peer_means_unknown() {
        let client = ClientIp::resolve(None, &forwarded(&["6.6.6.6"]), &trusted());
        assert_eq!(client, ClientIp(None));
    }

    #[test]
    fn networks_match_by_prefix() {
        let proxies = TrustedProxies::from_config(&[
            "10.0.0.0/8".to_owned(),
            "fd00::/8".to_owned(),
            "192.0.2.5".to_owned(),
            "0.0.0.0/0".to_owned(),
        ]);
        assert!(proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(proxies.contains("fd12::1".parse().unwrap()));
        assert!(proxies.contains("8.8.8.8".parse().unwrap()));
        let narrow = TrustedProxies::from_config(&["192.0.2.5".to_owned()]);
        assert!(narrow.contains("192.0.2.5".parse().unwrap()));
        assert!(!narrow.contains("192.0.2.6".parse().unwrap()));
        assert!(!narrow.contains("::1".parse().unwrap()));
    }
}
