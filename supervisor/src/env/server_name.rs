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

/// Checks `name` against the grammar `server_name = hostname [ ":" port ]`, where hostname is
/// an IPv4 literal, a bracketed IPv6 literal, or a DNS name of `[A-Za-z0-9.-]`, at most 255
/// characters.
pub fn validate_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.len() > 255 {
        return Err("it is longer than 255 characters".to_owned());
    }
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("an IPv6 literal needs a closing ]")?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("[{v6}] is not an IPv6 address"))?;
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(format!("unexpected {after:?} after the IPv6 literal")),
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
            _ => return Err(format!("{port:?} is not a valid port")),
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
            return Err(format!("{host:?} is not a valid host name"));
        }
    }
    Ok(())
}
