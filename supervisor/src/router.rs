//! The public HTTP port (docs/architecture.md#public-routing): an in-process router in front of
//! Synapse and MAS.
//!
//! [`serve`] accepts HTTP/1.1 connections, decides each request's destination from its path
//! alone (`route`), answers the front page (`front`), `/healthz`, the `.well-known/matrix` files,
//! `/.well-known/change-password` and the `/auth` redirect itself, and streams everything else to
//! Synapse or MAS (`proxy`), with the forwarding headers rewritten (`forwarded`). It owns no TLS (the platform's proxy terminates it) and starts no
//! process; the supervisor runs it next to the children and cancels it on shutdown.
//!
//! Router-made errors are Matrix JSON: 404 `M_NOT_FOUND` for `/_synapse/mas/...`, 400
//! `M_UNRECOGNIZED` for a path with dot segments (what Synapse answers for a request it does not
//! understand), 503/502 `M_UNKNOWN` for a backend that is down or fails, 408 `M_UNKNOWN` for a
//! request body that stalled. How many connections it serves at once and how long a client may
//! stall while sending are bounded (`limits`).

mod forwarded;
mod front;
mod limits;
mod local;
mod proxy;
mod route;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use self::front::{FrontContext, FrontPage};
pub use self::limits::Limits;
use self::limits::{Gate, IdleTimeoutBody, Warnings, Watched};
use self::local::{Health, WellKnown, matrix_error};
use self::proxy::{Backend, Proxy};
use self::route::{MAS_PREFIX, Route, route};

/// The body of every response: streamed from a backend, or made by the router.
type Body = Either<Incoming, Full<Bytes>>;

/// The body of a forwarded request: the client's, cut when it stalls.
type RequestBody = IdleTimeoutBody<Incoming>;

/// What the router needs to know.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The public origin, e.g. `https://matrix.example.com` or `http://localhost:8000`.
    pub origin: url::Url,
    /// Synapse's internal listener, `127.0.0.1:APPLIANCE_SYNAPSE_PORT`.
    pub synapse: SocketAddr,
    /// MAS's internal listener, `127.0.0.1:APPLIANCE_MAS_PORT`.
    pub mas: SocketAddr,
    /// Peers whose `X-Forwarded-*` headers are believed (`CLOUDRON_PROXY_IP`); loopback always is.
    pub trusted_proxies: Vec<IpAddr>,
    /// The connection cap and the request idle timeout.
    pub limits: Limits,
    /// What `/` answers.
    pub front_page: FrontPage,
}

/// Everything a request handler reads; shared by all connections.
#[derive(Debug)]
struct State {
    proxy: Proxy,
    front_page: FrontPage,
    well_known: WellKnown,
    health: Health,
    limits: Limits,
    warnings: Arc<Warnings>,
}

impl State {
    fn new(config: &RouterConfig) -> std::io::Result<Self> {
        let health_uri = |addr: SocketAddr, path: &str| {
            Uri::try_from(format!("http://{addr}{path}"))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        Ok(Self {
            proxy: Proxy::new(
                config.synapse,
                config.mas,
                forwarded::Trust::new(&config.trusted_proxies),
            ),
            front_page: config.front_page.clone(),
            well_known: WellKnown::new(&config.origin),
            health: Health {
                synapse: health_uri(config.synapse, "/health")?,
                mas: health_uri(config.mas, "/auth/health")?,
            },
            limits: config.limits,
            warnings: Arc::default(),
        })
    }
}

/// Serves the public port on `listener` until `shutdown` is cancelled.
///
/// Then it stops accepting, lets requests in flight finish for at most `drain` (idle keep-alive
/// connections close at once), closes whatever is left and returns. Accept errors (such as
/// running out of file descriptors) are logged and retried, never fatal. At most
/// `config.limits.max_connections` connections are served at once; the next ones wait in the
/// kernel's accept queue until one closes.
pub async fn serve(
    listener: TcpListener,
    config: RouterConfig,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let state = Arc::new(State::new(&config)?);
    tracing::info!(addr = %local_addr, origin = %config.origin, "router listening");
    let gate = Gate::new(config.limits.max_connections);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (permit, accepted) = gate.accept(&listener, &state.warnings) => match accepted {
                Ok((stream, peer)) => {
                    let shutdown = shutdown.clone();
                    connections.spawn(connection(stream, peer, permit, state.clone(), shutdown));
                }
                Err(error) => {
                    tracing::warn!(%error, "router: accept failed");
                    // EMFILE and friends: back off instead of spinning.
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            drain_ms = drain.as_millis(),
            "router: drain time over, closing remaining connections"
        );
        connections.shutdown().await;
    }
    tracing::info!(addr = %local_addr, "router stopped");
    Ok(())
}

/// Serves one client connection, holding one of the connection cap's permits until it closes;
/// on shutdown, finishes the request in flight and closes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: Option<OwnedSemaphorePermit>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    // Latency over throughput for small JSON answers; failure only costs latency.
    let _ = stream.set_nodelay(true);
    let (stream, sent_since_answer) = Watched::new(stream);
    let idle = state.limits.request_idle_timeout;
    let service_state = state.clone();
    let service = service_fn(move |request| {
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(handle(&state, peer, request).await) }
    });
    // The whole header within the idle timeout: headers are small, so a client that needs
    // longer is trickling them. This also closes keep-alive connections idle that long.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    let Err(error) = result else { return };
    let half_sent = sent_since_answer.load(std::sync::atomic::Ordering::Relaxed);
    if error.is_timeout() && half_sent && state.warnings.headers.allow() {
        tracing::warn!(
            %peer,
            idle_timeout_s = idle.as_secs(),
            "router: closed a connection whose request headers did not arrive in time \
             (APPLIANCE_REQUEST_IDLE_TIMEOUT)"
        );
    } else {
        // Clients hang up, time out and send garbage all the time: not worth a warning.
        tracing::debug!(%peer, %error, "router: connection ended with an error");
    }
}

/// Answers one request.
async fn handle(state: &State, peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    let idle = state.limits.request_idle_timeout;
    let request = request.map(|body| IdleTimeoutBody::new(body, idle, state.warnings.clone()));
    match route(request.uri().path()) {
        Route::Front => state.front_page.respond(request.method()),
        Route::ChangePassword => front::change_password(request.method()),
        Route::Healthz => state.health.check(request.method()).await,
        Route::WellKnownClient => state.well_known.client(request.method()),
        Route::WellKnownServer => state.well_known.server(request.method()),
        Route::AuthSlash => local::auth_slash(request.uri()),
        Route::Mas => state.proxy.forward(Backend::Mas, "", peer, request).await,
        Route::MasCompat => {
            let proxy = &state.proxy;
            proxy.forward(Backend::Mas, MAS_PREFIX, peer, request).await
        }
        Route::Synapse => {
            state
                .proxy
                .forward(Backend::Synapse, "", peer, request)
                .await
        }
        Route::Blocked => matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Not found"),
        Route::BadPath => matrix_error(
            StatusCode::BAD_REQUEST,
            "M_UNRECOGNIZED",
            "Unrecognized request",
        ),
    }
}
