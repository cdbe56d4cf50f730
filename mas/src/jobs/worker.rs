//! The in-process worker: one task, started by `mas-cli server`, that runs due jobs one at a
//! time, then sleeps until the next job is due, a [`JobWaker::wake`](super::JobWaker::wake)
//! or [`IDLE_POLL`], whichever comes first. At start it recovers the jobs a dead process left
//! `running`; every [`STALE_CHECK`] it recovers jobs running longer than [`STALE_AFTER`] (a
//! `manage` command killed mid-job). Database errors make it back off, never spin; a bad
//! payload fails its job, never the worker.
//!
//! [`run_job_now`] is the same execution for one particular job: the `manage` CLI runs the
//! job it just queued, so the homeserver is up to date when the command returns.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use ulid::Ulid;

use super::handlers::{self, JobError};
use super::{Job, JobContext};
use crate::model::{self, retry_delay};
use crate::storage::{StorageError, jobs as store};
use crate::telemetry::ErrorChain;

/// Longest sleep with nothing due: a safety net for a missed wake-up or a job queued by
/// another process (the `manage` CLI).
pub const IDLE_POLL: Duration = Duration::from_secs(30);
/// How often jobs stuck in `running` are looked for.
pub const STALE_CHECK: Duration = Duration::from_secs(60);
/// A job running this long was abandoned: every homeserver call times out after 10 s.
pub const STALE_AFTER: Duration = Duration::from_secs(300);
/// Attempts of a job that keeps failing with a non-transient error before it is given up.
/// Transient failures (homeserver unreachable, 5xx) are retried without limit, at most hourly.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// Shortest sleep between two polls, so that a pathological state cannot spin the CPU.
const MIN_SLEEP: Duration = Duration::from_millis(10);
/// Longest back-off after database errors.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(60);

/// How one attempt of a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the jobs it queued next (ids) follow.
    Completed {
        /// The follow-up jobs queued with the completion.
        follow_ups: Vec<Ulid>,
    },
    /// Failed; a new attempt is scheduled.
    Retrying {
        /// Why it failed.
        reason: String,
        /// When the next attempt is due (Unix ms).
        at: i64,
    },
    /// Failed for good.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// Not run here: the job was not `available` any more (another process claimed it).
    NotClaimed,
}

/// The result of [`run_job_now`]: each job run, in order, with its queue name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// `(queue name, outcome)` for the job and the follow-ups it led to.
    pub steps: Vec<(String, Outcome)>,
}

impl RunReport {
    /// Whether every step completed.
    pub fn all_completed(&self) -> bool {
        self.steps
            .iter()
            .all(|(_, outcome)| matches!(outcome, Outcome::Completed { .. }))
    }

    /// The first step that did not complete.
    pub fn first_failure(&self) -> Option<&(String, Outcome)> {
        self.steps
            .iter()
            .find(|(_, outcome)| !matches!(outcome, Outcome::Completed { .. }))
    }
}

/// Starts the worker on its own task; it stops when `shutdown` is cancelled (after the job
/// in progress, which is bounded by the homeserver call timeout).
pub fn spawn(ctx: JobContext, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(run(ctx, shutdown))
}

/// The worker loop (see the module documentation).
pub async fn run(ctx: JobContext, shutdown: CancellationToken) {
    tracing::info!("job worker started");
    let mut recovered = false;
    let mut last_stale_check = ctx.clock.now_unix_ms();
    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        let pass = async {
            if !recovered {
                recover(&ctx, i64::MAX).await?;
                recovered = true;
            }
            let now = ctx.clock.now_unix_ms();
            if now.saturating_sub(last_stale_check) >= millis(STALE_CHECK) {
                recover(&ctx, now.saturating_sub(millis(STALE_AFTER))).await?;
                last_stale_check = now;
            }
            run_due_jobs(&ctx, &shutdown).await?;
            next_sleep(&ctx).await
        };
        let sleep = match pass.await {
            Ok(sleep) => {
                backoff = Duration::from_secs(1);
                sleep
            }
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), retry_in = ?backoff, "job worker: database error");
                let sleep = backoff;
                backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                sleep
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = ctx.jobs.woken() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("job worker stopped");
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Marks jobs claimed before `started_before` lost and schedules their retries now.
async fn recover(ctx: &JobContext, started_before: i64) -> Result<(), StorageError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let mut rng = ctx.rng.fork();
    let now = ctx.clock.now_unix_ms();
    let retries =
        store::recover_stale_jobs(&mut conn, ctx.clock.as_ref(), &mut rng, started_before, now)
            .await?;
    if !retries.is_empty() {
        tracing::warn!(
            count = retries.len(),
            "recovered jobs left running by a stopped process"
        );
    }
    Ok(())
}

/// Claims and runs jobs until none is due (or `shutdown`).
pub async fn run_due_jobs(
    ctx: &JobContext,
    shutdown: &CancellationToken,
) -> Result<usize, StorageError> {
    let mut ran = 0;
    while !shutdown.is_cancelled() {
        let mut conn = ctx.db.pool().acquire().await?;
        let Some(job) = store::claim_next_job(&mut conn, ctx.clock.as_ref()).await? else {
            break;
        };
        drop(conn);
        execute(ctx, job).await?;
        ran += 1;
    }
    Ok(ran)
}

/// How long to sleep: until the next job is due, at most [`IDLE_POLL`].
async fn next_sleep(ctx: &JobContext) -> Result<Duration, StorageError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let due = store::next_job_due_at(&mut conn).await?;
    let sleep = match due {
        None => IDLE_POLL,
        Some(due) => {
            let wait = due.saturating_sub(ctx.clock.now_unix_ms());
            Duration::from_millis(u64::try_from(wait).unwrap_or(0)).min(IDLE_POLL)
        }
    };
    Ok(sleep.max(MIN_SLEEP))
}

/// Runs the job with this id now, if it is still `available`, then the jobs it queued next
/// (at most a few; a chain is short: provision-user → sync-devices). For the `manage` CLI.
pub async fn run_job_now(ctx: &JobContext, id: Ulid) -> Result<RunReport, StorageError> {
    const MAX_STEPS: usize = 4;
    let mut pending = vec![id];
    let mut steps = Vec::new();
    while let Some(id) = pending.pop() {
        if steps.len() >= MAX_STEPS {
            break;
        }
        let mut conn = ctx.db.pool().acquire().await?;
        let claimed = store::claim_job(&mut conn, ctx.clock.as_ref(), id).await?;
        drop(conn);
        let Some(job) = claimed else {
            let queue = queue_name_of(ctx, id).await?;
            steps.push((queue, Outcome::NotClaimed));
            continue;
        };
        let queue = job.queue_name.clone();
        let outcome = execute(ctx, job).await?;
        if let Outcome::Completed { follow_ups } = &outcome {
            pending.extend(follow_ups.iter().rev());
        }
        steps.push((queue, outcome));
    }
    Ok(RunReport { steps })
}

async fn queue_name_of(ctx: &JobContext, id: Ulid) -> Result<String, StorageError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let job = store::find_job(&mut conn, id).await?;
    Ok(job.map_or_else(|| "unknown".to_owned(), |job| job.queue_name))
}

/// Runs a claimed job and records how it ended.
async fn execute(ctx: &JobContext, job: model::Job) -> Result<Outcome, StorageError> {
    let span = tracing::info_span!(
        "job",
        job.id = %job.id,
        job.queue = %job.queue_name,
        job.attempt = job.attempt
    );
    async {
        let result = match Job::from_stored(&job.queue_name, &job.payload) {
            Ok(parsed) => handlers::run(ctx, &parsed).await,
            Err(error) => Err(JobError::Permanent(error.to_string())),
        };
        match result {
            Ok(follow_ups) => complete(ctx, &job, &follow_ups).await,
            Err(error) => fail(ctx, &job, &error).await,
        }
    }
    .instrument(span)
    .await
}

/// Queues the follow-ups and completes the job in one transaction.
async fn complete(
    ctx: &JobContext,
    job: &model::Job,
    follow_ups: &[Job],
) -> Result<Outcome, StorageError> {
    let mut rng = ctx.rng.fork();
    let mut tx = ctx.db.begin_write().await?;
    let mut ids = Vec::with_capacity(follow_ups.len());
    for next in follow_ups {
        let queued = store::enqueue_job(
            &mut tx,
            ctx.clock.as_ref(),
            &mut rng,
            next.queue_name(),
            &next.payload(),
        )
        .await?;
        ids.push(queued.id);
    }
    match store::complete_job(&mut tx, ctx.clock.as_ref(), job.id).await {
        Ok(()) => {}
        Err(StorageError::JobNotRunning(_)) => {
            // Recovered as lost meanwhile: its retry will redo the (idempotent) work.
            tracing::info!(job.id = %job.id, "job done, but it was recovered meanwhile");
            return Ok(Outcome::Completed {
                follow_ups: Vec::new(),
            });
        }
        Err(error) => return Err(error),
    }
    tx.commit().await?;
    tracing::info!(job.id = %job.id, job.queue = %job.queue_name, "job completed");
    if !ids.is_empty() {
        ctx.jobs.wake();
    }
    Ok(Outcome::Completed { follow_ups: ids })
}

/// Records the failure, with a retry unless the error is permanent or the attempts are used
/// up.
async fn fail(
    ctx: &JobContext,
    job: &model::Job,
    error: &JobError,
) -> Result<Outcome, StorageError> {
    let reason = error.reason().to_owned();
    let retry = match error {
        JobError::Transient(_) => true,
        JobError::Failed(_) => job.attempt.saturating_add(1) < MAX_FAILED_ATTEMPTS,
        JobError::Permanent(_) => false,
    };
    let now = ctx.clock.now_unix_ms();
    let retry_at = retry.then(|| now.saturating_add(millis(retry_delay(job.attempt))));
    let mut conn = ctx.db.pool().acquire().await?;
    let mut rng = ctx.rng.fork();
    let failed = store::fail_job(
        &mut conn,
        ctx.clock.as_ref(),
        &mut rng,
        job.id,
        &reason,
        retry_at,
    )
    .await;
    match failed {
        Ok(_) | Err(StorageError::JobNotRunning(_)) => {}
        Err(error) => return Err(error),
    }
    match retry_at {
        Some(at) => {
            tracing::warn!(job.id = %job.id, job.queue = %job.queue_name, job.attempt = job.attempt, reason = %reason, retry_in_ms = at - now, "job failed; will retry");
            Ok(Outcome::Retrying { reason, at })
        }
        None => {
            tracing::error!(job.id = %job.id, job.queue = %job.queue_name, job.attempt = job.attempt, reason = %reason, "job failed; giving up");
            Ok(Outcome::GaveUp { reason })
        }
    }
}
