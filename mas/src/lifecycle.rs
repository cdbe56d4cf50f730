//! The life of `mas-cli server`: bind every listener, serve until SIGTERM or SIGINT, then stop
//! accepting and let in-flight requests finish (for a bounded time) before returning, so the
//! process exits 0.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests get after a stop signal (the supervisor's grace is longer).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// A bound socket and the router it serves.
#[derive(Debug)]
pub struct BoundListener {
    label: String,
    address: SocketAddr,
    listener: TcpListener,
    router: Router,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A listener address could not be bound.
    #[error("cannot listen on {address} (listener {label})")]
    Bind {
        /// The listener's name.
        label: String,
        /// The configured address.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// A listener stopped on its own.
    #[error("listener {0} stopped unexpectedly")]
    ListenerStopped(String, #[source] std::io::Error),
}

impl BoundListener {
    /// Binds `address` (`host:port`; a host name is resolved) for `router`.
    pub async fn bind(label: &str, address: &str, router: Router) -> Result<Self, LifecycleError> {
        let bind_error = |source| LifecycleError::Bind {
            label: label.to_owned(),
            address: address.to_owned(),
            source,
        };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            label: label.to_owned(),
            address,
            listener,
            router,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

/// SIGTERM and SIGINT, installed early so a signal during start-up is not lost. SIGHUP is
/// caught too, so that the supervisor's reload signal never kills the server.
#[derive(Debug)]
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// Installs the handlers.
    pub fn install() -> Result<Self, LifecycleError> {
        Ok(Self {
            terminate: signal(SignalKind::terminate()).map_err(LifecycleError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(LifecycleError::Signals)?,
            hangup: signal(SignalKind::hangup()).map_err(LifecycleError::Signals)?,
        })
    }

    /// Waits for a stop signal and names it. SIGHUP is logged and otherwise ignored until
    /// there is something to reload (templates, with the web pages).
    pub async fn recv(&mut self) -> &'static str {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
                _ = self.hangup.recv() => tracing::debug!("SIGHUP received (templates reload on their own)"),
            }
        }
    }
}

/// Serves every listener until `stop` completes, then drains and returns.
pub async fn serve(
    listeners: Vec<BoundListener>,
    stop: impl Future<Output = ()>,
) -> Result<(), LifecycleError> {
    let token = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for bound in listeners {
        tracing::info!(listener = %bound.label, address = %bound.address, "listening");
        let shutdown = token.clone().cancelled_owned();
        tasks.spawn(async move {
            // The peer address feeds `extract::client_ip` (rate limits per IP).
            let service = bound
                .router
                .into_make_service_with_connect_info::<SocketAddr>();
            let result = axum::serve(bound.listener, service)
                .with_graceful_shutdown(shutdown)
                .await;
            (bound.label, result)
        });
    }
    let outcome = tokio::select! {
        () = stop => Ok(()),
        Some(Ok((label, result))) = tasks.join_next() => {
            Err(LifecycleError::ListenerStopped(
                label,
                result.err().unwrap_or_else(|| std::io::Error::other("no error reported")),
            ))
        }
    };
    token.cancel();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            timeout_secs = DRAIN_TIMEOUT.as_secs(),
            "requests still running after the drain timeout; stopping anyway"
        );
    }
    outcome
}
