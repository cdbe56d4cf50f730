//! HTTP readiness probes: one `GET` on a fresh connection, healthy on a 2xx answer.
//!
//! Used for the start gates (each step gated on real readiness,
//! docs/architecture.md#start-restart-and-stop) and by the router's `/healthz`. Plain `http://`
//! only: the probed services listen on loopback. Each probe opens its own connection and closes it,
//! so a wedged pooled connection can never make a dead service look alive.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a probe failed; `Display` is a short reason fit for `/healthz` and logs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://host[:port]/path`.
    #[error("invalid probe URL: {0}")]
    InvalidUrl(&'static str),
    /// Nothing listens on the port (yet).
    #[error("connection refused")]
    ConnectionRefused,
    /// No complete answer within the timeout.
    #[error("timed out")]
    TimedOut,
    /// Connecting failed for another reason (name resolution, unreachable network).
    #[error("connection failed: {0}")]
    Connect(std::io::Error),
    /// The service answered, but not with a 2xx status.
    #[error("HTTP {}", .0.as_u16())]
    Status(StatusCode),
    /// The service closed the connection without an answer.
    #[error("connection closed")]
    Closed,
    /// The HTTP exchange failed (reset, malformed answer).
    #[error("HTTP error: {0}")]
    Http(hyper::Error),
}

/// `GET url`, `Ok` on a 2xx status, all within `timeout` (connecting included).
pub async fn probe(url: &Uri, timeout: Duration) -> Result<(), ProbeError> {
    tokio::time::timeout(timeout, probe_once(url))
        .await
        .map_err(|_elapsed| ProbeError::TimedOut)?
}

async fn probe_once(url: &Uri) -> Result<(), ProbeError> {
    if url.scheme_str() != Some("http") {
        return Err(ProbeError::InvalidUrl("only http:// is supported"));
    }
    let authority = url.authority().ok_or(ProbeError::InvalidUrl("no host"))?;
    // `Uri::host` keeps the brackets of an IPv6 literal; the resolver wants it bare.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::ConnectionRefused => ProbeError::ConnectionRefused,
            _ => ProbeError::Connect(error),
        })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ProbeError::Http)?;
    let path = url.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request = Request::get(path)
        .body(Empty::<Bytes>::new())
        .map_err(|_invalid| ProbeError::InvalidUrl("bad path"))?;
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_invalid| ProbeError::InvalidUrl("bad host"))?;
    request.headers_mut().insert(HOST, host);
    request
        .headers_mut()
        .insert(USER_AGENT, HeaderValue::from_static("appliance-probe"));
    // The connection task runs here, not spawned: when the answer (or the timeout) comes, both
    // are dropped and the socket closes.
    let mut conn = std::pin::pin!(conn);
    let mut send = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        response = send.as_mut() => response,
        ended = conn.as_mut() => match ended {
            // A server that answers and closes at once: the answer has been handed over.
            Ok(()) => send.await,
            Err(error) => Err(error),
        },
    }
    .map_err(|error| {
        if error.is_canceled() || error.is_incomplete_message() {
            ProbeError::Closed
        } else {
            ProbeError::Http(error)
        }
    })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status(response.status()))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use http::Uri;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::{ProbeError, probe};

    /// A server that answers every connection with `response` (raw HTTP), or never when `None`.
    async fn raw_server(response: Option<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    match response {
                        Some(response) => stream.write_all(response.as_bytes()).await.unwrap(),
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        addr
    }

    fn url(addr: SocketAddr, path: &str) -> Uri {
        format!("http://{addr}{path}").parse().unwrap()
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn probe_succeeds_on_2xx() {
        let addr = raw_server(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK")).await;
        probe(&url(addr, "/health"), TIMEOUT).await.unwrap();
        let addr = raw_server(Some("HTTP/1.1 204 No Content\r\n\r\n")).await;
        probe(&url(addr, "/auth/health"), TIMEOUT).await.unwrap();
    }

    #[tokio::test]
    async fn probe_reports_status() {
        let addr = raw_server(Some(
            "HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let error = probe(&url(addr, "/health"), TIMEOUT).await.unwrap_err();
        assert_eq!(error.to_string(), "HTTP 503");
    }

    #[tokio::test]
    async fn probe_reports_connection_refused() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let error = probe(&url(addr, "/health"), TIMEOUT).await.unwrap_err();
        assert!(matches!(error, ProbeError::ConnectionRefused), "{error:?}");
        assert_eq!(error.to_string(), "connection refused");
    }

    #[tokio::test]
    async fn probe_times_out_on_a_silent_server() {
        let addr = raw_server(None).await;
        let started = std::time::Instant::now();
        let error = probe(&url(addr, "/health"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "timed out");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn probe_reports_closed_connection() {
        let addr = raw_server(Some("")).await;
        let error = probe(&url(addr, "/health"), TIMEOUT).await.unwrap_err();
        assert!(matches!(error, ProbeError::Closed), "{error:?}");
    }

    #[tokio::test]
    async fn probe_rejects_https() {
        let error = probe(&"https://127.0.0.1/health".parse().unwrap(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::InvalidUrl(_)), "{error:?}");
    }

    #[tokio::test]
    async fn probe_resolves_localhost() {
        let addr = raw_server(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        let uri: Uri = format!("http://localhost:{}/health", addr.port())
            .parse()
            .unwrap();
        // localhost may resolve to ::1 first; the connector tries each address.
        probe(&uri, TIMEOUT).await.unwrap();
    }
}
