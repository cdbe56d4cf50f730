//! `http`: the public URLs MAS advertises and the listeners it binds.

use std::net::IpAddr;

use camino::Utf8PathBuf;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::Url;

use super::Problems;

/// The `http` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Public URL of MAS, with a trailing slash (`https://matrix.example.com/auth/`). Every
    /// absolute URL MAS emits (discovery, redirects, email links) is built from it, never from
    /// the request's `Host`. Its path is the prefix the listeners serve under.
    pub public_base: Url,
    /// OpenID Connect issuer. Defaults to `public_base`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Url>,
    /// Networks (CIDR) whose `X-Forwarded-For` header is trusted for the client address.
    pub trusted_proxies: Vec<String>,
    /// The HTTP listeners; each serves a set of resources on one or more addresses.
    pub listeners: Vec<ListenerConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let web = ListenerConfig {
            name: Some("web".to_owned()),
            resources: vec![
                Resource::Discovery {},
                Resource::Human {},
                Resource::OAuth {},
                Resource::Compat {},
                Resource::Assets {
                    path: default_assets_path(),
                },
            ],
            prefix: None,
            binds: vec![BindConfig::address("[::]:8080")],
        };
        let internal = ListenerConfig {
            name: Some("internal".to_owned()),
            resources: vec![Resource::Health {}],
            prefix: None,
            binds: vec![BindConfig::address("localhost:8081")],
        };
        Self {
            public_base: Url::parse("http://[::]:8080/").expect("a constant, valid URL"),
            issuer: None,
            trusted_proxies: [
                "192.168.0.0/16",
                "172.16.0.0/12",
                "10.0.0.0/8",
                "127.0.0.0/8",
                "fd00::/8",
                "::1/128",
            ]
            .map(str::to_owned)
            .to_vec(),
            listeners: vec![web, internal],
        }
    }
}

/// One HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// A name for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The route groups this listener serves.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Path prefix every route is served under (`/auth`). Must equal the path of
    /// `http.public_base` without its trailing slash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Addresses to listen on.
    #[serde(default)]
    pub binds: Vec<BindConfig>,
}

impl ListenerConfig {
    /// The prefix routes are nested under, `None` for the root.
    pub fn path_prefix(&self) -> Option<&str> {
        self.prefix
            .as_deref()
            .map(|prefix| prefix.trim_end_matches('/'))
            .filter(|prefix| !prefix.is_empty())
    }

    /// A label for logs: the name, or the listener's index.
    pub fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("#{index}"))
    }
}

/// A route group a listener serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Variants without options are empty struct variants (`Health {}`), not unit variants: serde
// ignores unknown keys next to the tag of a unit variant, even with `deny_unknown_fields`.
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resource {
    /// `/health`, for readiness probes.
    Health {},
    /// `/metrics` (not served yet).
    Prometheus {},
    /// `/.well-known/openid-configuration` and `/.well-known/webfinger`.
    Discovery {},
    /// The web pages: login, registration, consent, account.
    Human {},
    /// The OAuth 2.0 endpoints under `/oauth2/`.
    #[serde(rename = "oauth")]
    OAuth {},
    /// The Matrix compatibility layer (`/_matrix/client/*/login` and friends).
    Compat {},
    /// Static files under `/assets/`.
    Assets {
        /// Directory the files are served from.
        #[serde(default = "default_assets_path")]
        path: Utf8PathBuf,
    },
    /// The admin REST API under `/api/admin/v1/` (not served yet).
    #[serde(rename = "adminapi")]
    AdminApi {},
}

impl Resource {
    /// The resource's `name` in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Health {} => "health",
            Self::Prometheus {} => "prometheus",
            Self::Discovery {} => "discovery",
            Self::Human {} => "human",
            Self::OAuth {} => "oauth",
            Self::Compat {} => "compat",
            Self::Assets { .. } => "assets",
            Self::AdminApi {} => "adminapi",
        }
    }
}

fn default_assets_path() -> Utf8PathBuf {
    Utf8PathBuf::from("assets")
}

/// One address a listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// `host:port`, e.g. `127.0.0.1:8080` or `[::]:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Host to bind with `port` (default: all interfaces); the alternative to `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to bind with `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl BindConfig {
    /// A bind on `host:port`.
    pub fn address(address: &str) -> Self {
        Self {
            address: Some(address.to_owned()),
            host: None,
            port: None,
        }
    }

    /// The `host:port` string to bind, when the bind is well-formed.
    pub fn socket_address(&self) -> Option<String> {
        match (&self.address, &self.host, self.port) {
            (Some(address), None, None) => Some(address.clone()),
            (None, host, Some(port)) => {
                let host = host.as_deref().unwrap_or("[::]");
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                Some(format!("{host}:{port}"))
            }
            _ => None,
        }
    }
}

impl HttpConfig {
    /// The issuer, defaulting to `public_base`.
    pub fn issuer(&self) -> &Url {
        self.issuer.as_ref().unwrap_or(&self.public_base)
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        check_http_url(problems, "http.public_base", &self.public_base);
        if !self.public_base.path().ends_with('/') {
            problems.push("http.public_base", "must end with a slash");
        }
        if let Some(issuer) = &self.issuer {
            check_http_url(problems, "http.issuer", issuer);
        }
        for (i, network) in self.trusted_proxies.iter().enumerate() {
            if let Err(message) = parse_cidr(network) {
                problems.push(format!("http.trusted_proxies[{i}]"), message);
            }
        }
        if self.listeners.is_empty() {
            problems.push("http.listeners", "at least one listener is required");
        }
        let base_path = self.public_base.path().trim_end_matches('/');
        for (i, listener) in self.listeners.iter().enumerate() {
            listener.validate(problems, &format!("http.listeners[{i}]"), base_path);
        }
    }
}

impl ListenerConfig {
    fn validate(&self, problems: &mut Problems, path: &str, base_path: &str) {
        if let Some(prefix) = &self.prefix {
            if !prefix.starts_with('/') {
                problems.push(format!("{path}.prefix"), "must start with a slash");
            } else if prefix.trim_end_matches('/') != base_path {
                problems.push(
                    format!("{path}.prefix"),
                    format!(
                        "`{prefix}` does not match the path of http.public_base (`{}`)",
                        if base_path.is_empty() { "/" } else { base_path }
                    ),
                );
            }
        }
        if self.binds.is_empty() {
            problems.push(format!("{path}.binds"), "at least one bind is required");
        }
        for (j, bind) in self.binds.iter().enumerate() {
            let path = format!("{path}.binds[{j}]");
            match bind.socket_address() {
                None => problems.push(path, "set either `address`, or `port` (and `host`)"),
                Some(address) => {
                    if let Err(message) = check_socket_address(&address) {
                        problems.push(path, message);
                    }
                }
            }
        }
    }
}

fn check_http_url(problems: &mut Problems, path: &str, url: &Url) {
    if !matches!(url.scheme(), "http" | "https") {
        problems.push(path, "must be an http:// or https:// URL");
    }
}

/// Checks `host:port` syntax (the host is resolved only when binding).
fn check_socket_address(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("`{address}` has no host"));
    }
    port.parse::<u16>()
        .map(drop)
        .map_err(|_| format!("`{address}` has an invalid port"))
}

/// Parses `address/prefix-length` (a bare address means a single host). An IPv4-mapped IPv6
/// network (`::ffff:10.0.0.0/104`) is its IPv4 form, as client addresses are compared in
/// their canonical form.
pub(crate) fn parse_cidr(network: &str) -> Result<IpNet, String> {
    let (address, length) = match network.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (network, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("`{network}` is not an IP network (CIDR)"))?;
    let invalid_length = || format!("`{network}` has an invalid prefix length");
    let net = match length {
        None => IpNet::from(address),
        Some(length) => {
            let length = length.parse::<u8>().map_err(|_| invalid_length())?;
            IpNet::new(address, length).map_err(|_| invalid_length())?
        }
    };
    let canonical = address.to_canonical();
    if canonical == address {
        return Ok(net);
    }
    // A mapped address sits in the last 32 of 128 bits.
    IpNet::new(canonical, net.prefix_len().saturating_sub(96)).map_err(|_| invalid_length())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_bind_brackets_ipv6() {
        let bind = BindConfig {
            address: None,
            host: Some("::1".to_owned()),
            port: Some(80),
        };
        assert_eq!(bind.socket_address().as_deref(), Some("[::1]:80"));
    }

    #[test]
    fn resource_names_match_their_serialized_tag() {
        let resources = [
            Resource::Health {},
            Resource::Prometheus {},
            Resource::Discovery {},
            Resource::Human {},
            Resource::OAuth {},
            Resource::Compat {},
            Resource::Assets { path: "a".into() },
            Resource::AdminApi {},
        ];
        for resource in resources {
            let yaml = serde_yaml::to_string(&resource).unwrap();
            assert!(
                yaml.starts_with(&format!("name: {}\n", resource.name())),
                "{yaml}"
            );
        }
    }

    #[test]
    fn cidr_parsing_checks_the_prefix_length() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("::1").is_ok());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com/8").is_err());
        // A mapped IPv6 network is its IPv4 form.
        let mapped = parse_cidr("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse::<IpNet>().unwrap());
        assert!(mapped.contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn prefix_is_normalised_without_trailing_slash() {
        let mut listener = HttpConfig::default().listeners.remove(0);
        listener.prefix = Some("/auth/".to_owned());
        assert_eq!(listener.path_prefix(), Some("/auth"));
        listener.prefix = Some("/".to_owned());
        assert_eq!(listener.path_prefix(), None);
    }
}
