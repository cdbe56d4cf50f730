//! The doctor's HTTP client: one `GET` over `http://` or `https://` (reqwest with rustls and the
//! webpki roots), following a few redirects, with a hard timeout over the whole exchange and a
//! small body cap. The router's probes (`probe.rs`) stay plain-HTTP and body-less; the doctor
//! needs public TLS and bodies, and nothing else in the appliance does.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
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

/// Why a check's `GET` gave nothing to look at; the texts end up in the doctor's `❌` lines.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("bad URL: {0}")]
    BadUrl(#[from] url::ParseError),
    #[error("HTTP client setup failed: {0}")]
    Setup(reqwest::Error),
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot connect to {authority}: {reason}")]
    Connect { authority: String, reason: String },
    #[error("TLS with {authority} failed: {reason}")]
    Tls { authority: String, reason: String },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("HTTP request failed: {0}")]
    Request(String),
    #[error("reading the body failed: {0}")]
    Body(String),
    /// A 2xx answer was expected.
    #[error("HTTP {}", .0.as_u16())]
    Status(StatusCode),
    /// A 2xx answer was expected; `url` is the one that answered.
    #[error("HTTP {} from {url}", status.as_u16())]
    StatusFrom { status: StatusCode, url: Url },
    #[error("{0} did not answer JSON")]
    NotJson(Url),
}

/// `GET url` within `timeout` (all redirects and the body included).
pub(crate) async fn get(url: &Url, timeout: Duration) -> Result<Fetched, FetchError> {
    tokio::time::timeout(timeout, fetch(url))
        .await
        .map_err(|_elapsed| FetchError::Timeout(timeout))?
}

async fn fetch(url: &Url) -> Result<Fetched, FetchError> {
    // One client per check: the doctor makes a handful of requests, and a client kept in a
    // static would outlive the runtime its pooled connections belong to.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent("appliance-doctor")
        // The checks are about the path from this host; a proxy from the environment would
        // answer for the origin instead.
        .no_proxy()
        .build()
        .map_err(FetchError::Setup)?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| request_error(url, &e))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Body(root_cause(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::Body("length limit exceeded".to_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status: response.status(),
        body: body.into(),
        url: response.url().clone(),
    })
}

/// Names what failed, the way an admin reads it: connecting, TLS, redirects or the exchange.
fn request_error(url: &Url, e: &reqwest::Error) -> FetchError {
    if e.is_redirect() {
        return FetchError::TooManyRedirects;
    }
    if !e.is_connect() {
        return FetchError::Request(root_cause(e));
    }
    // The URL that failed may be a redirect's target.
    let url = e.url().unwrap_or(url);
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    );
    let reason = root_cause(e);
    if is_tls_failure(e) {
        FetchError::Tls { authority, reason }
    } else {
        FetchError::Connect { authority, reason }
    }
}

/// tokio-rustls reports every TLS failure as an `InvalidData` I/O error (which reqwest wraps in
/// another I/O error); a socket's own errors never are.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    fn invalid_data(io: &std::io::Error) -> bool {
        io.kind() == std::io::ErrorKind::InvalidData
            || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .is_some_and(invalid_data)
    }
    std::iter::successors(e.source(), |&cause| cause.source()).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(invalid_data)
    })
}

/// The innermost cause: reqwest's and hyper's own texts ("error sending request", "client
/// error (Connect)") say less than the socket's or rustls's.
fn root_cause(e: &reqwest::Error) -> String {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |&cause| {
        cause.source()
    })
    .last()
    .map(ToString::to_string)
    .unwrap_or_default()
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
    async fn follows_three_redirects_and_no_more() {
        let hop = "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n";
        let done = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let port = serve(vec![hop, hop, hop, done]).await;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let fetched = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(fetched.status, StatusCode::OK);

        let port = serve(vec![hop, hop, hop, hop]).await;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let error = get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.to_string(), "more than 3 redirects");
    }

    #[tokio::test]
    async fn a_closed_port_says_it_cannot_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let error = get(&url, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused() {
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            MAX_BODY + 1,
            "x".repeat(MAX_BODY + 1)
        );
        let port = serve(vec![answer.leak()]).await;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let error = get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            error.to_string().starts_with("reading the body failed"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_instead_of_hanging() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let error = get(&url, Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("no answer"), "{error}");
        drop(listener);
    }

    #[tokio::test]
    async fn https_to_a_plain_server_fails_with_a_tls_error() {
        let port = serve(vec!["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let url = Url::parse(&format!("https://localhost:{port}/")).unwrap();
        let error = get(&url, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("TLS"), "{error}");
    }
}
