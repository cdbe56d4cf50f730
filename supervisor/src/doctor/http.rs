//! The doctor's HTTP client: one `GET` over `http://` or `https://` (rustls, webpki roots),
//! following a few redirects, with a hard timeout over the whole exchange and a small body cap.
//! The router's probes (`probe.rs`) stay plain-HTTP and body-less; the doctor needs public
//! TLS and bodies, and nothing else in the appliance does.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use url::Url;

/// Largest body read: the documents the doctor looks at are a few hundred bytes.
const MAX_BODY: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 3;

/// An answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// The URL that answered (after redirects).
    pub(crate) url: Url,
}

impl Fetched {
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// `GET url` within `timeout` (all redirects included).
pub(crate) async fn get(url: &Url, timeout: Duration) -> Result<Fetched, String> {
    tokio::time::timeout(timeout, follow(url.clone()))
        .await
        .map_err(|_elapsed| format!("no answer within {} s", timeout.as_secs()))?
}

async fn follow(mut url: Url) -> Result<Fetched, String> {
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = once(&url).await?;
        match location {
            Some(location) if status.is_redirection() => {
                url = url
                    .join(&location)
                    .map_err(|e| format!("bad redirect to {location:?}: {e}"))?;
            }
            _ => return Ok(Fetched { status, body, url }),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

async fn once(url: &Url) -> Result<(StatusCode, Option<String>, Bytes), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme() {
        "http" => exchange(tcp, url).await,
        "https" => {
            let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
            let tls = TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
            exchange(tls, url).await
        }
        other => Err(format!("unsupported scheme {other}")),
    }
}

async fn exchange<S>(stream: S, url: &Url) -> Result<(StatusCode, Option<String>, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let conn = tokio::spawn(conn);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut request = Request::get(path)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let headers = request.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&authority).map_err(|e| format!("bad host: {e}"))?,
    );
    headers.insert(USER_AGENT, HeaderValue::from_static("appliance-doctor"));
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request failed: {e}"))?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
            .to_bytes();
        Ok((status, location, body))
    }
    .await;
    conn.abort();
    result
}

fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    async fn serve(answers: Vec<&'static str>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
                let _ = s.shutdown().await;
            }
        });
        port
    }

    #[tokio::test]
    async fn follows_a_redirect_and_reads_the_body() {
        let port = serve(vec![
            "HTTP/1.1 301 Moved\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":true}\n",
        ])
        .await;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/a")).unwrap();
        let fetched = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(fetched.url.path(), "/b");
        assert_eq!(fetched.json().unwrap()["a"], true);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_instead_of_hanging() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let error = get(&url, Duration::from_millis(300)).await.unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        drop(listener);
    }

    #[tokio::test]
    async fn https_to_a_plain_server_fails_with_a_tls_error() {
        let port = serve(vec!["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let url = Url::parse(&format!("https://localhost:{port}/")).unwrap();
        let error = get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("TLS"), "{error}");
    }
}
