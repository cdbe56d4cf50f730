//! `mas-cli server`: checks the configuration and the database, then serves every listener
//! until SIGTERM or SIGINT, with the job worker and the rate limiters' pruning running beside
//! them.

use std::process::ExitCode;
use std::sync::Arc;

use camino::Utf8PathBuf;

use crate::app::{self, AppState};
use crate::clock::SystemClock;
use crate::config::RootConfig;
use crate::homeserver::SynapseConnection;
use crate::jobs::{self, JobContext};
use crate::lifecycle::{self, BoundListener, StopSignals};
use crate::ratelimit;
use crate::rng::RngSource;
use crate::storage::{self, Database};

/// How long a stopping server waits for the job in progress.
const WORKER_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(12);

pub(super) async fn run(files: &[Utf8PathBuf]) -> anyhow::Result<ExitCode> {
    let signals = StopSignals::install()?;
    let config = super::load_valid(files, None)?;
    let db = Database::connect(&config.database).await?;
    storage::ensure_up_to_date(&db).await?;

    let homeserver = SynapseConnection::from_config(&config.matrix)?;
    let state = AppState::from_config(
        &config,
        db.clone(),
        Arc::new(SystemClock),
        RngSource::from_entropy(),
        Arc::new(homeserver),
    )?;
    // Static clients from `clients` are written into the database at every start.
    crate::storage::static_clients::sync_static_clients(
        &db,
        state.clock.as_ref(),
        &state.rng,
        &state.encrypter,
        &config.clients,
    )
    .await?;
    let _template_reloads = state.templates.reload_on_sighup()?;
    let listeners = bind_listeners(&config, &state).await?;
    serve(listeners, &state, signals).await?;
    db.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Binds every address of every listener, each with its own router; warns about the
/// resources a listener names that are not served yet.
async fn bind_listeners(
    config: &RootConfig,
    state: &AppState,
) -> anyhow::Result<Vec<BoundListener>> {
    let mut listeners = Vec::new();
    for (index, listener) in config.http.listeners.iter().enumerate() {
        let label = listener.label(index);
        let unserved: Vec<&str> = (listener.resources.iter())
            .filter(|resource| !app::is_served(resource))
            .map(|resource| resource.name())
            .collect();
        if !unserved.is_empty() {
            let unserved = unserved.join(", ");
            tracing::warn!(listener = %label, resources = %unserved, "resources not served yet");
        }
        let router = app::build_router(state.clone(), listener);
        for address in listener
            .binds
            .iter()
            .filter_map(|bind| bind.socket_address())
        {
            listeners.push(BoundListener::bind(&label, &address, router.clone()).await?);
        }
    }
    Ok(listeners)
}

/// Serves `listeners` until a stop signal, with the job worker and the rate limiters'
/// pruning beside them, then stops those too.
async fn serve(
    listeners: Vec<BoundListener>,
    state: &AppState,
    mut signals: StopSignals,
) -> anyhow::Result<()> {
    // The job worker runs beside the listeners and stops with them.
    let stop_worker = tokio_util::sync::CancellationToken::new();
    let worker = jobs::worker::spawn(JobContext::from(state), stop_worker.clone());
    // Expired rate-limit keys are dropped here, off the request path.
    let pruning = state
        .limiter
        .spawn_pruning(state.clock.clone(), ratelimit::PRUNE_INTERVAL);
    let served = lifecycle::serve(listeners, async {
        let name = signals.recv().await;
        tracing::info!(signal = name, "stopping");
    })
    .await;
    pruning.abort();
    stop_worker.cancel();
    // A job in progress ends within the homeserver call timeout; a job cut short is
    // recovered at the next start.
    if tokio::time::timeout(WORKER_STOP_TIMEOUT, worker)
        .await
        .is_err()
    {
        tracing::warn!("the job worker did not stop in time; its job will be retried");
    }
    served?;
    Ok(())
}
