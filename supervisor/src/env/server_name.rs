//! The Matrix server name: its default and its syntax (Matrix spec, appendix "Server name").

use url::Url;

/// The default server name (docs/architecture.md#environment): on Cloudron the app domain minus its
/// first label when it has three or more labels (`matrix.example.com` → `example.com`), else the
/// app domain; elsewhere the origin's host.
pub fn default_server_name(cloudron: bool, origin: &Url, app_domain: &str) -> String {
    if cloudron {
        let labels: Vec<&str> = app_domain.split('.').collect();
        if labels.len() >= 3 {
            return labels[1..].join(".");
        }
        return app_domain.to_owned();
    }
    origin.host_str().unwrap_or_default().to_ascii_lowercase()
}

/// Why a server name is not one (completes "… is not a valid Matrix server name: ").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerNameError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than 255 characters")]
    TooLong,
    #[error("an IPv6 literal needs a closing ]")]
    UnclosedIpv6,
    #[error("[{0}] is not an IPv6 address")]
    BadIpv6(String),
    #[error("unexpected {0:?} after the IPv6 literal")]
    AfterIpv6(String),
    #[error("{0:?} is not a valid port")]
    BadPort(String),
    #[error("{0:?} is not a valid host name")]
    BadHost(String),
}

/// Checks `name` against the grammar `server_name = hostname [ ":" port ]`, where hostname is
/// an IPv4 literal, a bracketed IPv6 literal, or a DNS name of `[A-Za-z0-9.-]`, at most 255
/// characters.
pub fn validate_server_name(name: &str) -> Result<(), ServerNameError> {
    if name.is_empty() {
        return Err(ServerNameError::Empty);
    }
    if name.len() > 255 {
        return Err(ServerNameError::TooLong);
    }
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(ServerNameError::UnclosedIpv6)?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| ServerNameError::BadIpv6(v6.to_owned()))?;
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(ServerNameError::AfterIpv6(after.to_owned())),
            },
        }
    } else {
        match name.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(name), None),
        }
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(ServerNameError::BadPort(port.to_owned())),
        }
    }
    if let Some(host) = host {
        let valid = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(ServerNameError::BadHost(host.to_owned()));
        }
    }
    Ok(())
}
