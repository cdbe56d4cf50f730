//! The supervision loop (docs/architecture.md#start-restart-and-stop): start the router, run MAS's
//! migrations, start Synapse and MAS, keep them running (capped exponential backoff; more than
//! [`CRASH_LIMIT`] failures in [`CRASH_WINDOW`] ends the appliance non-zero), re-render and forward
//! SIGHUP, and on SIGTERM/SIGINT stop in reverse start order within the stop timeout.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::child::{ChildSpec, describe, run_once};
use crate::probe::probe;
use crate::render::RenderError;

/// When and how often a child is restarted.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// More failures than this within `window` make the supervisor give up.
    pub limit: usize,
    pub window: Duration,
    /// First delay before a restart; doubled after each failure up to `backoff_max`.
    pub backoff_start: Duration,
    pub backoff_max: Duration,
    /// A child that ran this long starts over with the shortest backoff.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    /// More than 5 failures in 2 minutes is fatal (docs/architecture.md#start-restart-and-stop).
    fn default() -> Self {
        RestartPolicy {
            limit: 5,
            window: Duration::from_secs(120),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// How the appliance ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by a signal: exit 0.
    Stopped,
    /// A child kept failing, or a one-shot failed: exit non-zero.
    Failed(String),
}

/// The pieces [`run`] needs; built by `main`.
pub struct Plan {
    pub migrate: ChildSpec,
    /// Long-running children in start order; stopped in reverse.
    pub services: Vec<ChildSpec>,
    pub router: JoinHandle<std::io::Result<()>>,
    pub router_shutdown: CancellationToken,
    /// Re-renders the configs on SIGHUP; errors are logged and the old files kept.
    pub rerender: Box<dyn Fn() -> Result<(), RenderError> + Send>,
}

struct Service {
    name: &'static str,
    cancel: CancellationToken,
    hup: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The signals the main loop listens to, installed once before anything starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Runs the appliance until a signal or a fatal failure.
pub async fn run(plan: Plan) -> std::io::Result<Outcome> {
    let started = Instant::now();
    let mut signals = Signals::install()?;

    if let Some(outcome) = migrate(&plan.migrate, &mut signals).await {
        plan.router_shutdown.cancel();
        let _ = plan.router.await;
        return Ok(outcome);
    }

    let (fatal_tx, fatal_rx) = mpsc::channel::<String>(4);
    let services = start_services(plan.services, &fatal_tx, started);
    let outcome = wait_for_stop(&mut signals, &services, &plan.rerender, fatal_rx).await;

    // Stop: the router stops accepting, then the children in reverse start order.
    tracing::info!("stopping");
    plan.router_shutdown.cancel();
    for service in services.into_iter().rev() {
        service.cancel.cancel();
        if service.task.await.is_err() {
            tracing::error!(child = service.name, "supervision task failed");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), plan.router).await;
    Ok(outcome)
}

/// Runs the one-shot migrations; `None` when they succeeded and the services may start, else
/// how the appliance ends (a signal meanwhile stops everything).
async fn migrate(spec: &ChildSpec, signals: &mut Signals) -> Option<Outcome> {
    let status = tokio::select! {
        status = run_once(spec) => status,
        _ = signals.term.recv() => return Some(Outcome::Stopped),
        _ = signals.int.recv() => return Some(Outcome::Stopped),
    };
    match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(Outcome::Failed(format!(
            "MAS database migration failed ({}); see the mas | lines above",
            describe(Some(status))
        ))),
        Err(e) => Some(Outcome::Failed(format!(
            "cannot run {}: {e}",
            spec.program.display()
        ))),
    }
}

/// Starts one supervision task per service, in order, and logs "appliance ready" once every
/// one of them has been ready once.
fn start_services(
    specs: Vec<ChildSpec>,
    fatal: &mpsc::Sender<String>,
    started: Instant,
) -> Vec<Service> {
    let mut services = Vec::new();
    let mut ready = Vec::new();
    for spec in specs {
        let cancel = CancellationToken::new();
        let hup = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        let name = spec.name;
        let task = tokio::spawn(keep_running(
            spec,
            RestartPolicy::default(),
            Channels {
                cancel: cancel.clone(),
                hup: hup.clone(),
                fatal: fatal.clone(),
                ready: ready_tx,
            },
        ));
        services.push(Service {
            name,
            cancel,
            hup,
            task,
        });
    }
    tokio::spawn(async move {
        for rx in ready {
            if rx.await.is_err() {
                return;
            }
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "appliance ready"
        );
    });
    services
}

/// Waits for a stop signal or a child's fatal failure; on SIGHUP re-renders the configs and
/// forwards the signal to every service.
async fn wait_for_stop(
    signals: &mut Signals,
    services: &[Service],
    rerender: &(dyn Fn() -> Result<(), RenderError> + Send),
    mut fatal: mpsc::Receiver<String>,
) -> Outcome {
    loop {
        tokio::select! {
            _ = signals.term.recv() => return Outcome::Stopped,
            _ = signals.int.recv() => return Outcome::Stopped,
            _ = signals.quit.recv() => return Outcome::Stopped,
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: re-rendering configs and forwarding the signal");
                match rerender() {
                    Ok(()) => services.iter().for_each(|s| s.hup.notify_one()),
                    Err(e) => tracing::error!(error = %e, "re-render failed; keeping the previous configs"),
                }
            }
            Some(reason) = fatal.recv() => return Outcome::Failed(reason),
        }
    }
}

/// How a supervised child talks to the main loop.
pub(crate) struct Channels {
    /// Cancelled to stop the child for good.
    pub(crate) cancel: CancellationToken,
    /// Notified to forward SIGHUP.
    pub(crate) hup: Arc<Notify>,
    /// Receives the reason when the child keeps failing.
    pub(crate) fatal: mpsc::Sender<String>,
    /// Fired once, the first time the child is ready.
    pub(crate) ready: tokio::sync::oneshot::Sender<()>,
}

/// Keeps one child running until cancelled; reports a crash loop on `fatal`.
pub(crate) async fn keep_running(spec: ChildSpec, policy: RestartPolicy, channels: Channels) {
    let Channels {
        cancel,
        hup,
        fatal,
        ready,
    } = channels;
    let mut failures: VecDeque<Instant> = VecDeque::new();
    let mut backoff = policy.backoff_start;
    let mut ready = Some(ready);
    loop {
        let started = Instant::now();
        let status = match spec.spawn() {
            Ok(mut running) => {
                let readiness = watch_readiness(&spec, started, ready.take());
                let exited = tokio::select! {
                    status = wait_forwarding_hup(&mut running, &hup) => Some(status),
                    () = cancel.cancelled() => None,
                    // Readiness resolves on its own; keep waiting for the child afterwards.
                    () = readiness => wait_or_cancel(&mut running, &hup, &cancel).await,
                };
                match exited {
                    Some(status) => status.ok(),
                    None => {
                        running.stop(spec.grace).await;
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::error!(child = spec.name, program = %spec.program.display(), error = %e, "cannot start");
                None
            }
        };
        let now = Instant::now();
        if now.duration_since(started) > policy.stable_after {
            backoff = policy.backoff_start;
        }
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            failures.pop_front();
        }
        if failures.len() > policy.limit {
            let reason = format!(
                "{} failed {} times within {} s (last: {}); giving up",
                spec.name,
                failures.len(),
                policy.window.as_secs(),
                describe(status)
            );
            let _ = fatal.send(reason).await;
            return;
        }
        tracing::warn!(
            child = spec.name,
            status = %describe(status),
            restart_in_ms = backoff.as_millis() as u64,
            "exited unexpectedly; restarting"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(policy.backoff_max);
    }
}

async fn wait_forwarding_hup(
    running: &mut crate::child::Running,
    hup: &Notify,
) -> std::io::Result<std::process::ExitStatus> {
    loop {
        tokio::select! {
            status = running.wait() => return status,
            () = hup.notified() => running.signal(Signal::SIGHUP),
        }
    }
}

async fn wait_or_cancel(
    running: &mut crate::child::Running,
    hup: &Notify,
    cancel: &CancellationToken,
) -> Option<std::io::Result<std::process::ExitStatus>> {
    tokio::select! {
        status = wait_forwarding_hup(running, hup) => Some(status),
        () = cancel.cancelled() => None,
    }
}

/// Probes until the child answers, logs the time it took, and reports it once.
async fn watch_readiness(
    spec: &ChildSpec,
    started: Instant,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    if let Some(url) = &spec.ready_url {
        let mut last_log = Instant::now();
        while probe(url, Duration::from_secs(1)).await.is_err() {
            if last_log.elapsed() > Duration::from_secs(30) {
                tracing::warn!(
                    child = spec.name,
                    waited_s = started.elapsed().as_secs(),
                    "still not ready"
                );
                last_log = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tracing::info!(
        child = spec.name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ready"
    );
    if let Some(tx) = ready {
        let _ = tx.send(());
    }
}

#[cfg(test)]
mod tests;
