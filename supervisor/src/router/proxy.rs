//! Forwarding requests to Synapse and MAS over pooled keep-alive connections.
//!
//! Bodies are streamed both ways: the client's `Incoming` body is the backend request's body and
//! the backend's `Incoming` body is the client response's body, so memory stays bounded by
//! hyper's buffers whatever the size of an upload or download. There is a connect timeout but no
//! overall timeout, because `/sync` long-polls for 30 s and more.
//!
//! A backend that cannot be reached (refused, connect timeout) gives 503 with a Matrix JSON error
//! at once: the component is down or (re)starting, as `/healthz` would say. A backend that was
//! reached but failed the exchange (reset, malformed answer) gives 502. A client whose request
//! body stalls past the idle timeout gets 408 and its connection closed.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{
    CONNECTION, EXPECT, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::forwarded::{Trust, set_forwarding_headers};
use super::limits::is_request_body_idle;
use super::local::matrix_error;
use super::{Body, RequestBody};

/// How long connecting to a backend may take. Both are on loopback, so this only matters when
/// something is badly wrong.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Hop-by-hop headers (RFC 9110 §7.6.1), plus the ones a `Connection` header names.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// One of the two backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Synapse,
    Mas,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Synapse => "Synapse",
            Self::Mas => "MAS",
        }
    }
}

/// The forwarding half of the router: a pooled client and the addresses it talks to.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    client: Client<HttpConnector, RequestBody>,
    synapse: SocketAddr,
    mas: SocketAddr,
    trust: Trust,
}

impl Proxy {
    pub(crate) fn new(synapse: SocketAddr, mas: SocketAddr, trust: Trust) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            // Below the idle timeouts servers commonly use, so that a pooled connection is
            // rarely closed by the backend just as a request is put on it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            synapse,
            mas,
            trust,
        }
    }

    /// Sends `request` from `peer` to `backend`, with `prefix` put in front of its path.
    pub(crate) async fn forward(
        &self,
        backend: Backend,
        prefix: &str,
        peer: SocketAddr,
        request: Request<RequestBody>,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let addr = match backend {
            Backend::Synapse => self.synapse,
            Backend::Mas => self.mas,
        };
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let Ok(uri) = Uri::try_from(format!("http://{addr}{prefix}{path_and_query}")) else {
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_UNRECOGNIZED",
                "Unrecognized request",
            );
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        // hyper already answered any `100-continue` towards the client.
        parts.headers.remove(EXPECT);
        set_forwarding_headers(&mut parts.headers, peer.ip(), &self.trust);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());

        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(error) if is_request_body_idle(&error) => {
                // Logged (once a minute at most) where the body timed out.
                tracing::debug!(http.method = %method, url.path = uri.path(), "request body stalled");
                // RFC 9110 §15.5.9: 408 and close, as the rest of the body will not be read.
                let mut response = matrix_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "M_UNKNOWN",
                    "Request body timed out",
                );
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                response
            }
            Err(error) => {
                let unreachable = error.is_connect();
                // The path only: the query can carry an access token.
                tracing::warn!(
                    component = backend.name(),
                    http.method = %method,
                    url.path = uri.path(),
                    error = %ErrorChain(&error),
                    "proxying to backend failed"
                );
                let name = backend.name();
                if unreachable {
                    let message = format!("{name} is not reachable");
                    matrix_error(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", &message)
                } else {
                    let message = format!("{name} did not answer");
                    matrix_error(StatusCode::BAD_GATEWAY, "M_UNKNOWN", &message)
                }
            }
        }
    }
}

/// Removes hop-by-hop headers, including the ones `Connection` names (but never `Host`).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| *name != HOST)
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// An error with its sources, `outer: inner: innermost`.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::strip_hop_by_hop;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop, host"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-hop", "1"),
            ("host", "matrix.example.com"),
            ("authorization", "Bearer t"),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type", "host"]);
    }
}
