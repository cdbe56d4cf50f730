//! HTTP tests of the router: a real listener in front of in-process fake backends.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{FrontContext, FrontPage, Limits, RouterConfig, serve};

type TestBody = BoxBody<Bytes, Infallible>;

const MB: u64 = 1024 * 1024;

/// A body of `remaining` bytes cut from one shared chunk: big on the wire, small in memory.
struct Repeat {
    remaining: u64,
    chunk: Bytes,
    exact: bool,
}

impl Repeat {
    fn new(len: u64, exact: bool) -> Self {
        Self {
            remaining: len,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
            exact,
        }
    }
}

impl HttpBody for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        let data = self.chunk.slice(..n as usize);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into()).boxed()
}

fn empty() -> TestBody {
    Empty::new().boxed()
}

/// Counts a body's bytes without keeping them.
async fn count(mut body: Incoming) -> u64 {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len() as u64;
        }
    }
    n
}

/// Serves `handler` on a loopback port.
async fn backend<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A backend that answers with a JSON description of the request it got.
async fn echo(name: &'static str) -> SocketAddr {
    backend(move |request: Request<Incoming>| async move {
        let (parts, body) = request.into_parts();
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let values: Vec<_> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.insert(name.as_str().to_owned(), values.into());
        }
        let description = serde_json::json!({
            "backend": name,
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body_len": count(body).await,
        });
        Response::builder()
            .header("content-type", "application/json")
            .header("connection", "x-response-hop")
            .header("x-response-hop", "1")
            .header("x-backend", name)
            .body(full(description.to_string()))
            .unwrap()
    })
    .await
}

/// A loopback port where nothing listens.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

struct TestRouter {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start_router(synapse: SocketAddr, mas: SocketAddr, drain: Duration) -> TestRouter {
    start_router_with(synapse, mas, drain, Vec::new()).await
}

/// The production defaults (`APPLIANCE_MAX_CONNECTIONS`, `APPLIANCE_REQUEST_IDLE_TIMEOUT`).
const DEFAULT_LIMITS: Limits = Limits {
    max_connections: 1024,
    request_idle_timeout: Duration::from_secs(30),
};

async fn start_router_with(
    synapse: SocketAddr,
    mas: SocketAddr,
    drain: Duration,
    trusted_proxies: Vec<IpAddr>,
) -> TestRouter {
    start_router_full(synapse, mas, drain, trusted_proxies, DEFAULT_LIMITS).await
}

async fn start_router_limited(synapse: SocketAddr, limits: Limits) -> TestRouter {
    let mas = closed_port().await;
    start_router_full(synapse, mas, Duration::ZERO, Vec::new(), limits).await
}

async fn start_router_full(
    synapse: SocketAddr,
    mas: SocketAddr,
    drain: Duration,
    trusted_proxies: Vec<IpAddr>,
    limits: Limits,
) -> TestRouter {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = RouterConfig {
        origin: "https://matrix.example.com".parse().unwrap(),
        synapse,
        mas,
        trusted_proxies,
        limits,
        front_page: FrontPage::render(&FrontContext {
            server_name: "example.com".to_owned(),
            registration: true,
            token_required: false,
        })
        .unwrap(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, config, shutdown.clone(), drain));
    TestRouter {
        addr,
        shutdown,
        task,
    }
}

fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(request: Request<TestBody>) -> Answer {
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(router: &TestRouter, path: &str) -> Answer {
    let request = Request::get(format!("http://{}{path}", router.addr))
        .body(empty())
        .unwrap();
    send(request).await
}

/// Peak resident set size of this process (nextest runs each test in its own process).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn router_proxies_everything_else_to_synapse_unchanged() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    for path in [
        "/_matrix/client/v3/sync?since=s1&timeout=30000",
        "/_matrix/client/v1/auth_metadata",
        "/_matrix/client/v3/loginx",
        "/authx",
        "/_synapse/admin/v1/users?limit=1",
        "//",
        "/index.html",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let seen = answer.json();
        assert_eq!(seen["backend"], "synapse", "{path}");
        assert_eq!(seen["uri"], path);
    }
}

#[tokio::test]
async fn router_sends_compat_paths_to_mas_with_auth_prefix() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    for path in [
        "/_matrix/client/v3/login",
        "/_matrix/client/r0/login?device=x",
        "/_matrix/client/api/v1/login",
        "/_matrix/client/v3/logout/all",
        "/_matrix/client/v3/refresh",
        "/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fapp.element.io%2F",
    ] {
        let request = Request::post(format!("http://{}{path}", router.addr))
            .header("content-type", "application/json")
            .body(full(r#"{"type":"m.login.password"}"#))
            .unwrap();
        let seen = send(request).await.json();
        assert_eq!(seen["backend"], "mas", "{path}");
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["uri"], format!("/auth{path}"));
        assert_eq!(seen["body_len"], 27);
    }
}

#[tokio::test]
async fn router_sends_auth_paths_to_mas_unchanged() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    for path in [
        "/auth/",
        "/auth/.well-known/openid-configuration",
        "/auth/upstream/callback/01J00000000000000000PR0V1D?code=c&state=s",
    ] {
        let seen = get(&router, path).await.json();
        assert_eq!(seen["backend"], "mas", "{path}");
        assert_eq!(seen["uri"], path);
    }
}

#[tokio::test]
async fn router_redirects_bare_auth_keeping_the_query() {
    // No backend is needed for this answer.
    let router = start_router(closed_port().await, closed_port().await, Duration::ZERO).await;
    let answer = get(&router, "/auth?next=%2Faccount&x=1").await;
    assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(answer.headers["location"], "/auth/?next=%2Faccount&x=1");
}

#[tokio::test]
async fn router_blocks_internal_mas_api_even_when_encoded() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    for path in [
        "/_synapse/mas/is_localpart_available?localpart=a",
        "/_synapse/%6Das/is_localpart_available",
        "/_synapse/mas",
        "//_synapse/mas/x",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.json()["errcode"], "M_NOT_FOUND");
    }
}

#[tokio::test]
async fn router_rejects_dot_segments() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    for path in [
        "/_matrix/../_synapse/mas/x",
        "/auth/%2e%2e/_synapse/mas",
        "/a/./b",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.json()["errcode"], "M_UNRECOGNIZED");
    }
}

#[tokio::test]
async fn router_serves_well_known_files() {
    let router = start_router(closed_port().await, closed_port().await, Duration::ZERO).await;
    let client = get(&router, "/.well-known/matrix/client").await;
    assert_eq!(client.status, StatusCode::OK);
    assert_eq!(client.headers["access-control-allow-origin"], "*");
    assert_eq!(client.headers["content-type"], "application/json");
    assert_eq!(
        client.json(),
        serde_json::json!({
            "m.homeserver": {"base_url": "https://matrix.example.com"},
            "org.matrix.msc2965.authentication": {
                "issuer": "https://matrix.example.com/auth/",
                "account": "https://matrix.example.com/auth/account/",
            },
        })
    );
    let server = get(&router, "/.well-known/matrix/server").await;
    assert_eq!(
        server.json(),
        serde_json::json!({"m.server": "matrix.example.com:443"})
    );
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("http://{}/.well-known/matrix/client", router.addr))
        .header("origin", "https://app.element.io")
        .header("access-control-request-method", "GET")
        .body(empty())
        .unwrap();
    let preflight = send(preflight).await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn router_forwards_headers_and_strips_hop_by_hop() {
    let router = start_router_with(
        echo("synapse").await,
        echo("mas").await,
        Duration::ZERO,
        vec!["10.0.0.2".parse().unwrap()],
    )
    .await;
    let request = Request::put(format!(
        "http://{}/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/t1",
        router.addr
    ))
    .header("host", "matrix.example.com")
    .header("authorization", "Bearer syt_token")
    .header("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")
    .header("x-forwarded-proto", "https")
    .header("forwarded", "for=6.6.6.6")
    .header("connection", "keep-alive, x-hop")
    .header("keep-alive", "timeout=5")
    .header("x-hop", "1")
    .header("x-custom", "kept")
    .body(full("{}"))
    .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    // Response hop-by-hop headers are stripped as well; end-to-end ones are kept.
    assert!(!answer.headers.contains_key("x-response-hop"));
    assert_eq!(answer.headers["x-backend"], "synapse");
    let seen = answer.json();
    let headers = &seen["headers"];
    assert_eq!(headers["host"], serde_json::json!(["matrix.example.com"]));
    assert_eq!(
        headers["authorization"],
        serde_json::json!(["Bearer syt_token"])
    );
    assert_eq!(headers["x-custom"], serde_json::json!(["kept"]));
    // The router's peer is loopback (trusted): the proxy chain is walked from the right.
    assert_eq!(
        headers["x-forwarded-for"],
        serde_json::json!(["203.0.113.7"])
    );
    assert_eq!(headers["x-forwarded-proto"], serde_json::json!(["https"]));
    assert_eq!(
        headers["x-forwarded-host"],
        serde_json::json!(["matrix.example.com"])
    );
    for gone in ["x-hop", "keep-alive", "forwarded"] {
        assert!(headers.get(gone).is_none(), "{gone} was forwarded");
    }
}

/// A backend playing Synapse's rendezvous (MSC4108, MSC4388) closely enough to see what the
/// router passes: the conditional request headers and the content type in, and the `ETag`,
/// `Location`, CORS headers and a bodiless 304 out.
async fn rendezvous_backend() -> SocketAddr {
    backend(|request: Request<Incoming>| async move {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let seen = format!(
            "{} {} if-match={} if-none-match={} content-type={}",
            request.method(),
            request.uri().path(),
            header("if-match"),
            header("if-none-match"),
            header("content-type"),
        );
        let builder = Response::builder()
            .header("x-seen", seen)
            .header("access-control-allow-origin", "*")
            .header("access-control-expose-headers", "ETag, Location");
        let response = match (request.method(), header("if-none-match").as_str()) {
            (&Method::GET, "\"1\"") => builder.status(StatusCode::NOT_MODIFIED).body(empty()),
            (&Method::POST, _) => builder
                .status(StatusCode::CREATED)
                .header("etag", "\"1\"")
                .header("location", "/_synapse/client/rendezvous/abc")
                .body(full("{\"url\":\"/_synapse/client/rendezvous/abc\"}")),
            _ => builder
                .status(StatusCode::ACCEPTED)
                .header("etag", "\"2\"")
                .body(empty()),
        };
        response.unwrap()
    })
    .await
}

/// QR login's rendezvous channel reaches Synapse through the router with the headers it relies
/// on (MSC4108: `ETag` / `If-Match` / `If-None-Match`, any content type, CORS for browser
/// clients), on the MSC4108 and MSC4388 paths and on Synapse's session path.
#[tokio::test]
async fn router_passes_the_rendezvous_channel_with_its_headers() {
    let router = start_router(
        rendezvous_backend().await,
        echo("mas").await,
        Duration::ZERO,
    )
    .await;
    let url = |path: &str| format!("http://{}{path}", router.addr);
    for create in [
        "/_matrix/client/unstable/org.matrix.msc4108/rendezvous",
        "/_matrix/client/unstable/io.element.msc4388/rendezvous",
    ] {
        let answer = send(
            Request::post(url(create))
                .header("content-type", "text/plain")
                .body(full("opaque payload"))
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{create}");
        assert_eq!(answer.headers["etag"], "\"1\"");
        assert_eq!(
            answer.headers["location"],
            "/_synapse/client/rendezvous/abc"
        );
        assert_eq!(
            answer.headers["access-control-expose-headers"],
            "ETag, Location"
        );
        assert_eq!(
            answer.headers["x-seen"],
            format!("POST {create} if-match= if-none-match= content-type=text/plain").as_str()
        );
    }
    let session = "/_synapse/client/rendezvous/abc";
    let answer = send(
        Request::put(url(session))
            .header("content-type", "application/octet-stream")
            .header("if-match", "\"1\"")
            .body(full("next"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.headers["etag"], "\"2\"");
    assert_eq!(
        answer.headers["x-seen"],
        "PUT /_synapse/client/rendezvous/abc if-match=\"1\" if-none-match= content-type=application/octet-stream"
    );
    let answer = send(
        Request::get(url(session))
            .header("if-none-match", "\"1\"")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);
    assert!(answer.body.is_empty());
    let preflight = send(
        Request::options(url(session))
            .header("origin", "https://app.element.io")
            .header("access-control-request-method", "PUT")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    assert!(
        preflight.headers["x-seen"]
            .to_str()
            .unwrap()
            .starts_with("OPTIONS /_synapse/client/rendezvous/abc")
    );
}

#[tokio::test]
async fn router_sets_forwarding_headers_when_none_were_sent() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    let request = Request::get(format!("http://{}/auth/account/", router.addr))
        .header("host", "localhost:8000")
        .body(empty())
        .unwrap();
    let seen = send(request).await.json();
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(headers["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(
        headers["x-forwarded-host"],
        serde_json::json!(["localhost:8000"])
    );
}

#[tokio::test]
async fn router_answers_json_error_fast_when_backend_is_down() {
    let router = start_router(closed_port().await, closed_port().await, Duration::ZERO).await;
    let started = Instant::now();
    let answer = get(&router, "/_matrix/client/v3/sync?access_token=secret").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(
        answer.json(),
        serde_json::json!({"errcode": "M_UNKNOWN", "error": "Synapse is not reachable"})
    );
    let answer = get(&router, "/_matrix/client/v3/login").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"], "MAS is not reachable");
}

#[tokio::test]
async fn router_answers_502_when_backend_fails_the_exchange() {
    // Accepts, reads the request, hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
        }
    });
    let router = start_router(rude, closed_port().await, Duration::ZERO).await;
    let answer = get(&router, "/_matrix/client/versions").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json(),
        serde_json::json!({"errcode": "M_UNKNOWN", "error": "Synapse did not answer"})
    );
}

/// A backend answering its health endpoint with `status`.
async fn health_backend(status: StatusCode) -> SocketAddr {
    backend(move |request: Request<Incoming>| async move {
        let status = match request.uri().path() {
            "/health" | "/auth/health" => status,
            _ => StatusCode::NOT_FOUND,
        };
        Response::builder().status(status).body(full("OK")).unwrap()
    })
    .await
}

#[tokio::test]
async fn healthz_is_ok_when_both_backends_are_healthy() {
    let synapse = health_backend(StatusCode::OK).await;
    let mas = health_backend(StatusCode::OK).await;
    let router = start_router(synapse, mas, Duration::ZERO).await;
    let answer = get(&router, "/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "ok", "synapse": "ok", "mas": "ok"})
    );
}

#[tokio::test]
async fn healthz_names_each_failing_component() {
    let synapse = health_backend(StatusCode::SERVICE_UNAVAILABLE).await;
    let router = start_router(synapse, closed_port().await, Duration::ZERO).await;
    let answer = get(&router, "/healthz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        serde_json::json!({
            "status": "unavailable",
            "synapse": "HTTP 503",
            "mas": "connection refused",
        })
    );

    let mas = health_backend(StatusCode::OK).await;
    let router = start_router(closed_port().await, mas, Duration::ZERO).await;
    let answer = get(&router, "/healthz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "unavailable", "synapse": "connection refused", "mas": "ok"})
    );
}

#[tokio::test]
async fn healthz_reports_a_stuck_component_within_the_probe_timeout() {
    let stuck = backend(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(empty())
    })
    .await;
    let router = start_router(health_backend(StatusCode::OK).await, stuck, Duration::ZERO).await;
    let started = Instant::now();
    let answer = get(&router, "/healthz").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "unavailable", "synapse": "ok", "mas": "timed out"})
    );
}

#[tokio::test]
async fn router_streams_a_50_mb_upload_without_buffering() {
    const SIZE: u64 = 50 * MB;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let synapse = backend(move |request: Request<Incoming>| {
        let counter = counter.clone();
        async move {
            let n = count(request.into_body()).await;
            counter.store(n, Ordering::SeqCst);
            Response::new(full(n.to_string()))
        }
    })
    .await;
    let router = start_router(synapse, closed_port().await, Duration::ZERO).await;
    // Warm up the code paths so that their one-off allocations are in the baseline.
    let warmup = Request::post(format!("http://{}/_matrix/media/v3/upload", router.addr))
        .body(Repeat::new(MB, true).boxed())
        .unwrap();
    assert_eq!(send(warmup).await.status, StatusCode::OK);
    let baseline = peak_rss_bytes();

    let request = Request::post(format!("http://{}/_matrix/media/v3/upload", router.addr))
        .header("content-type", "application/octet-stream")
        .body(Repeat::new(SIZE, true).boxed())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(received.load(Ordering::SeqCst), SIZE);
    assert_eq!(answer.body, SIZE.to_string());
    let growth = peak_rss_bytes().saturating_sub(baseline);
    eprintln!("peak RSS growth: {} KiB", growth / 1024);
    assert!(growth < 20 * MB, "peak RSS grew by {} MB", growth / MB);
}

#[tokio::test]
async fn router_streams_a_50_mb_download_without_buffering() {
    const SIZE: u64 = 50 * MB;
    let synapse = backend(|request: Request<Incoming>| async move {
        let size = if request.uri().path().ends_with("/big") {
            SIZE
        } else {
            MB
        };
        // Chunked: no length known in advance, as for a generated answer.
        Response::new(Repeat::new(size, false).boxed())
    })
    .await;
    let router = start_router(synapse, closed_port().await, Duration::ZERO).await;
    let url = |name: &str| format!("http://{}/_matrix/media/v3/download/{name}", router.addr);
    let warmup = send(Request::get(url("small")).body(empty()).unwrap()).await;
    assert_eq!(warmup.body.len() as u64, MB);
    let baseline = peak_rss_bytes();

    let response = client()
        .request(Request::get(url("big")).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(response.into_body()).await, SIZE);
    let growth = peak_rss_bytes().saturating_sub(baseline);
    eprintln!("peak RSS growth: {} KiB", growth / 1024);
    assert!(growth < 20 * MB, "peak RSS grew by {} MB", growth / MB);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
    let slow = backend(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(full("done"))
    })
    .await;
    let router = start_router(slow, closed_port().await, Duration::from_secs(5)).await;
    let in_flight = tokio::spawn(get_owned(router.addr, "/_matrix/client/v3/sync"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.shutdown.cancel();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "done");
    tokio::time::timeout(Duration::from_secs(5), router.task)
        .await
        .expect("serve returns after the drain")
        .unwrap()
        .unwrap();
    let refused = TcpStream::connect(router.addr).await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

async fn get_owned(addr: SocketAddr, path: &'static str) -> Answer {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(empty())
        .unwrap();
    send(request).await
}

#[tokio::test]
async fn shutdown_drain_is_bounded() {
    let stuck = backend(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Response::new(empty())
    })
    .await;
    let router = start_router(stuck, closed_port().await, Duration::from_millis(200)).await;
    let in_flight = tokio::spawn(async move {
        let request = Request::get(format!("http://{}/_matrix/client/v3/sync", router.addr))
            .body(empty())
            .unwrap();
        client().request(request).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    router.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), router.task)
        .await
        .expect("serve returns after the drain time")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // The stuck request is cut off, not answered.
    assert!(in_flight.await.unwrap().is_err());
}

/// Sends raw bytes and returns the status line of the answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn router_answers_malformed_requests_with_4xx() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    let cases: [&[u8]; 7] = [
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /_matrix/%2e%2e/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /a/./b HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET http://evil.example/_synapse/mas/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for case in cases {
        let status = raw(router.addr, case).await;
        let code = status.split(' ').nth(1).unwrap_or_default();
        assert!(
            code.starts_with('4'),
            "{:?} got {status:?}",
            String::from_utf8_lossy(case)
        );
    }
    // And the router still serves.
    assert_eq!(get(&router, "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn router_serves_http_1_0_without_host() {
    let router = start_router(echo("synapse").await, echo("mas").await, Duration::ZERO).await;
    let status = raw(
        router.addr,
        b"GET /_matrix/client/versions HTTP/1.0\r\n\r\n",
    )
    .await;
    assert!(
        status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
        "{status}"
    );
}

/// Reads until the router closes the connection (or `limit` passes); returns what came and when
/// the read ended.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let elapsed = closed.is_ok().then(|| started.elapsed());
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}

fn idle_limits(idle: Duration) -> Limits {
    Limits {
        request_idle_timeout: idle,
        ..DEFAULT_LIMITS
    }
}

#[tokio::test]
async fn router_closes_a_connection_that_stalls_in_its_headers() {
    let router =
        start_router_limited(echo("synapse").await, idle_limits(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    stream
        .write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.expect("the router closes the connection");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );
    assert!(!answer.contains(" 200 "), "{answer}");
}

/// A POST to an echoing Synapse, its body sent by `send_body` on the raw connection.
async fn post_slowly<F, Fut>(
    router: &TestRouter,
    length: usize,
    send_body: F,
) -> (String, Option<Duration>)
where
    F: FnOnce(TcpStream) -> Fut,
    Fut: Future<Output = TcpStream>,
{
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    let head = format!(
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut stream = send_body(stream).await;
    read_until_closed(&mut stream, Duration::from_secs(5)).await
}

#[tokio::test]
async fn router_cuts_a_request_body_that_stalls() {
    let router =
        start_router_limited(echo("synapse").await, idle_limits(Duration::from_secs(1))).await;
    let started = Instant::now();
    let (answer, closed) = post_slowly(&router, 100, |mut stream| async move {
        stream.write_all(&[b'x'; 40]).await.unwrap();
        // ...and nothing more: the connection stays open from our side.
        stream
    })
    .await;
    assert!(
        closed.is_some(),
        "the router closes the connection: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("\"M_UNKNOWN\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn router_lets_a_slow_but_moving_body_through() {
    let router =
        start_router_limited(echo("synapse").await, idle_limits(Duration::from_secs(1))).await;
    // 6 pieces 300 ms apart: 1.5 s in all, past the idle timeout, never idle that long.
    let (answer, _) = post_slowly(&router, 60, |mut stream| async move {
        for i in 0..6 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            stream.write_all(&[b'x'; 10]).await.unwrap();
        }
        stream
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"body_len\":60"), "{answer}");
}

#[tokio::test]
async fn router_does_not_time_out_a_slow_response() {
    // A long-poll: the client has sent everything, the backend takes longer than the idle timeout.
    let slow = backend(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        Response::new(full("{}"))
    })
    .await;
    let router = start_router_limited(slow, idle_limits(Duration::from_secs(1))).await;
    let answer = get(&router, "/_matrix/client/v3/sync?timeout=30000").await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn router_serves_at_most_max_connections_at_once() {
    let limits = Limits {
        max_connections: 2,
        ..DEFAULT_LIMITS
    };
    let router = start_router_limited(echo("synapse").await, limits).await;
    let request = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two keep-alive connections, each served once and left open.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(router.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut buf = [0; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
        open.push(stream);
    }
    // The third connects (the kernel queues it) but is not served...
    let mut third = TcpStream::connect(router.addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0; 4096];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    // ...until one of the first two closes.
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn router_answers_the_front_page_itself_for_get_and_head() {
    // No backend is needed for these answers.
    let router = start_router(closed_port().await, closed_port().await, Duration::ZERO).await;
    let answer = get(&router, "/").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/html; charset=utf-8");
    assert!(answer.headers.contains_key("content-security-policy"));
    let html = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(
        html.contains("example.com") && html.contains("/auth/register"),
        "{html}"
    );

    let head = Request::head(format!("http://{}/?x=1", router.addr))
        .body(empty())
        .unwrap();
    let head = send(head).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(
        head.headers["content-length"],
        html.len().to_string().as_str()
    );

    let post = Request::post(format!("http://{}/", router.addr))
        .body(full("x"))
        .unwrap();
    let post = send(post).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn router_redirects_the_well_known_change_password_url() {
    let router = start_router(closed_port().await, closed_port().await, Duration::ZERO).await;
    let answer = get(&router, "/.well-known/change-password").await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.headers["location"], "/auth/account/password");
}
