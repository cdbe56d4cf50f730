//! Latency the router adds: small keep-alive GETs straight to a backend, then through the router.
//!
//! Run with `cargo bench -p supervisor --bench router` (optimized build). Both servers and the
//! client share one process and one tokio runtime on loopback, so the figures are the router's
//! own cost (parse, route, rewrite headers, pooled forward) plus one loopback hop, not a network.
//! `ROUTER_BENCH_REQUESTS` overrides the number of timed requests per series (default 20,000).

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use supervisor::router::{FrontPage, Limits, RouterConfig, serve};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn Error + Send + Sync>;

const WARMUP: usize = 1_000;

/// A backend answering every request with a small JSON body, like `/_matrix/client/versions`.
async fn backend() -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    let body = Full::new(Bytes::from_static(br#"{"versions":["v1.11"]}"#));
                    let mut response = Response::new(body);
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().expect("static"));
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Latencies of `warmup + n` sequential GETs on one keep-alive connection, warm-up dropped.
async fn measure(addr: SocketAddr, n: usize) -> Result<Vec<Duration>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let request = Request::get("/_matrix/client/versions")
            .header("host", "matrix.example.com")
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        if !status.is_success() || body.is_empty() {
            return Err(format!("unexpected answer: {status}").into());
        }
        if i >= WARMUP {
            latencies.push(elapsed);
        }
    }
    Ok(latencies)
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut latencies: Vec<Duration>) -> Stats {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let total: Duration = latencies.iter().sum();
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean: total / u32::try_from(latencies.len()).unwrap_or(u32::MAX),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<(), BoxError> {
    let n: usize = match std::env::var("ROUTER_BENCH_REQUESTS") {
        Ok(value) => value.parse()?,
        Err(_) => 20_000,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let backend = backend().await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let router = listener.local_addr()?;
        let config = RouterConfig {
            origin: "https://matrix.example.com".parse()?,
            synapse: backend,
            mas: backend,
            trusted_proxies: Vec::new(),
            limits: Limits {
                max_connections: 1024,
                request_idle_timeout: Duration::from_secs(30),
            },
            front_page: FrontPage::operator(b"<!DOCTYPE html><title>front</title>".to_vec()),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            config,
            shutdown.clone(),
            Duration::from_secs(1),
        ));

        let direct = stats(measure(backend, n).await?);
        let routed = stats(measure(router, n).await?);
        println!("router bench: {n} sequential keep-alive GETs per series, small JSON answer");
        println!(
            "{:<16} {:>10} {:>10} {:>10}",
            "", "p50 µs", "p99 µs", "mean µs"
        );
        for (name, s) in [("direct", &direct), ("through router", &routed)] {
            println!(
                "{name:<16} {:>10.1} {:>10.1} {:>10.1}",
                us(s.p50),
                us(s.p99),
                us(s.mean)
            );
        }
        println!(
            "{:<16} {:>10.1} {:>10.1} {:>10.1}",
            "overhead",
            us(routed.p50.saturating_sub(direct.p50)),
            us(routed.p99.saturating_sub(direct.p99)),
            us(routed.mean.saturating_sub(direct.mean)),
        );
        shutdown.cancel();
        task.await??;
        Ok(())
    })
}
