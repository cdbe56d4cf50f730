//! What keeps slow or numerous clients from tying up the public port ("slowloris"): a cap on
//! the connections served at once, and an idle timeout on what a client sends.
//!
//! - The cap is a semaphore taken before `accept()`: past it, new connections wait in the
//!   kernel's accept queue (not accepted and closed), and are served as others close.
//! - Request headers must arrive whole within the idle timeout (hyper's `header_read_timeout`,
//!   set in `router.rs`; it also closes keep-alive connections idle that long). A request body
//!   may pause at most that long between two reads ([`IdleTimeoutBody`]). Nothing limits how
//!   long a *response* takes, so `/sync` long-polls and slow downloads are untouched, and an
//!   upload may take as long as it likes as long as bytes keep coming.
//!
//! Each limit, when hit, writes one warning line, at most once a minute ([`Throttle`]), so an
//! attack cannot flood the log.

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Shortest time between two warning lines about one limit.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How much a client may hold of the public port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once (`APPLIANCE_MAX_CONNECTIONS`); more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may go without sending while the router waits for its request
    /// headers or body (`APPLIANCE_REQUEST_IDLE_TIMEOUT`).
    pub request_idle_timeout: Duration,
}

/// A request body that paused longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data for {} s", .idle.as_secs())]
pub(crate) struct RequestBodyIdle {
    idle: Duration,
}

/// Lets a warning through at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Whether a line may be written now (and, if so, starts a new quiet period).
    pub(crate) fn allow(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// One throttle per limit, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    pub(crate) connections: Throttle,
    pub(crate) headers: Throttle,
    pub(crate) bodies: Throttle,
}

/// The connection cap: a permit per connection served, taken before it is accepted.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Gate {
    pub(crate) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Waits for a free slot, then for a connection. Cancel-safe: dropping the future gives
    /// the slot back, and an unaccepted connection stays in the kernel's queue.
    pub(crate) async fn accept(
        &self,
        listener: &TcpListener,
        warnings: &Warnings,
    ) -> (
        Option<OwnedSemaphorePermit>,
        io::Result<(TcpStream, std::net::SocketAddr)>,
    ) {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                if warnings.connections.allow() {
                    tracing::warn!(
                        max_connections = self.max,
                        "router: connection limit reached; new connections wait until others \
                         close (APPLIANCE_MAX_CONNECTIONS)"
                    );
                }
                // Only fails once the semaphore is closed, which this module never does.
                self.permits.clone().acquire_owned().await.ok()
            }
        };
        (permit, listener.accept().await)
    }
}

/// A connection that remembers whether the client sent anything since the router last wrote:
/// when hyper's header timeout fires, that tells a half-sent request (a slow client) from a
/// keep-alive connection idle between two requests (normal).
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    sent_since_answer: Arc<AtomicBool>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S) -> (Self, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        let watched = Self {
            inner,
            sent_since_answer: flag.clone(),
        };
        (watched, flag)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.sent_since_answer.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.sent_since_answer.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.sent_since_answer.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails with [`RequestBodyIdle`] when, while it is being read, no frame
/// arrives for `idle`. The clock runs only while the reader waits on the client, and restarts
/// at every frame, so a large upload that keeps moving is never cut.
#[derive(Debug)]
pub(crate) struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    /// Armed when the reader starts waiting; `None` until the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    warnings: Arc<Warnings>,
}

impl<B> IdleTimeoutBody<B> {
    pub(crate) fn new(inner: B, idle: Duration, warnings: Arc<Warnings>) -> Self {
        Self {
            inner,
            idle,
            timer: None,
            waiting: false,
            warnings,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        // The clock is read only when a wait starts, not on every poll of a wait.
        let timer = match &mut this.timer {
            Some(timer) => {
                if !this.waiting {
                    timer.as_mut().reset(Instant::now() + this.idle);
                }
                timer
            }
            None => this.timer.insert(Box::pin(tokio::time::sleep(this.idle))),
        };
        this.waiting = true;
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if this.warnings.bodies.allow() {
            tracing::warn!(
                idle_timeout_s = this.idle.as_secs(),
                "router: cut a request whose body stalled (APPLIANCE_REQUEST_IDLE_TIMEOUT)"
            );
        }
        Poll::Ready(Some(Err(Box::new(RequestBodyIdle { idle: this.idle }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or one of its sources, is a stalled request body.
pub(crate) fn is_request_body_idle(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<RequestBodyIdle>() {
            return true;
        }
        current = error.source();
    }
    false
}
