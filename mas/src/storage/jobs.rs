//! `queue_jobs`: the durable job queue (migration 0009). Enqueue inside the transaction of
//! the change that needs the job, so both commit or neither does. The worker claims jobs with
//! a conditional update (no `FOR UPDATE`, portable): of two claims of one job, one wins.
//! A failed attempt stays `failed`; a retry is a new row, linked by `next_attempt_id`.

use rand::RngCore;
use sqlx::{AnyConnection, Connection as _};
use ulid::Ulid;

use super::StorageError;
use super::rows;
use crate::clock::Clock;
use crate::model::{Job, JobStatus};
use crate::rng::new_ulid;

/// The select list [`JobRow`] decodes.
macro_rules! job_columns {
    () => {
        "queue_job_id, queue_name, payload, status, attempt, scheduled_at, created_at, \
         started_at, completed_at, failed_at, failed_reason, next_attempt_id"
    };
}

#[derive(sqlx::FromRow)]
struct JobRow {
    queue_job_id: String,
    queue_name: String,
    payload: String,
    status: String,
    attempt: i64,
    scheduled_at: i64,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    failed_at: Option<i64>,
    failed_reason: Option<String>,
    next_attempt_id: Option<String>,
}

impl TryFrom<JobRow> for Job {
    type Error = StorageError;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: rows::ulid("queue_jobs.queue_job_id", &row.queue_job_id)?,
            queue_name: row.queue_name,
            payload: rows::json("queue_jobs.payload", &row.payload)?,
            status: rows::parse("queue_jobs.status", &row.status)?,
            attempt: row.attempt,
            scheduled_at: row.scheduled_at,
            created_at: row.created_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            failed_at: row.failed_at,
            failed_reason: row.failed_reason,
            next_attempt_id: rows::opt_ulid(
                "queue_jobs.next_attempt_id",
                row.next_attempt_id.as_deref(),
            )?,
        })
    }
}

/// Adds a job to run as soon as the worker gets to it (attempt 0).
pub async fn enqueue_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    queue_name: &str,
    payload: &serde_json::Value,
) -> Result<Job, StorageError> {
    let now = clock.now_unix_ms();
    schedule_job(conn, clock, rng, queue_name, payload, now).await
}

/// Adds a job that may run from `run_at` (Unix milliseconds) on (attempt 0).
#[tracing::instrument(
    name = "db.queue_jobs.add",
    skip_all,
    fields(job.queue = queue_name, job.id = tracing::field::Empty),
    err
)]
pub async fn schedule_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    queue_name: &str,
    payload: &serde_json::Value,
    run_at: i64,
) -> Result<Job, StorageError> {
    let now = clock.now_unix_ms();
    insert(
        conn,
        new_ulid(now, rng),
        queue_name,
        payload,
        0,
        run_at,
        now,
    )
    .await
}

/// Inserts an `available` job.
async fn insert(
    conn: &mut AnyConnection,
    id: Ulid,
    queue_name: &str,
    payload: &serde_json::Value,
    attempt: i64,
    run_at: i64,
    now: i64,
) -> Result<Job, StorageError> {
    tracing::Span::current().record("job.id", tracing::field::display(id));
    sqlx::query(
        "INSERT INTO queue_jobs \
         (queue_job_id, queue_name, payload, status, attempt, scheduled_at, created_at) \
         VALUES ($1, $2, $3, 'available', $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(queue_name)
    .bind(rows::to_json("queue_jobs.payload", payload)?)
    .bind(attempt)
    .bind(run_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Job {
        id,
        queue_name: queue_name.to_owned(),
        payload: payload.clone(),
        status: JobStatus::Available,
        attempt,
        scheduled_at: run_at,
        created_at: now,
        started_at: None,
        completed_at: None,
        failed_at: None,
        failed_reason: None,
        next_attempt_id: None,
    })
}

/// Claims the oldest due `available` job and marks it `running`. `None` when nothing is due,
/// or when another worker claimed the same job first (poll again).
#[tracing::instrument(name = "db.queue_jobs.claim", skip_all, fields(job.id = tracing::field::Empty), err)]
pub async fn claim_next_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
) -> Result<Option<Job>, StorageError> {
    // The outer `status = 'available'` makes the claim conditional: a concurrent claim of the
    // same row re-checks it after the winner's update and changes nothing.
    let row: Option<JobRow> = sqlx::query_as(concat!(
        "UPDATE queue_jobs SET status = 'running', started_at = $1 \
         WHERE queue_job_id = ( \
             SELECT queue_job_id FROM queue_jobs \
             WHERE status = 'available' AND scheduled_at <= $1 \
             ORDER BY scheduled_at, queue_job_id LIMIT 1 \
         ) AND status = 'available' \
         RETURNING ",
        job_columns!()
    ))
    .bind(clock.now_unix_ms())
    .fetch_optional(&mut *conn)
    .await?;
    let job = row.map(Job::try_from).transpose()?;
    if let Some(job) = &job {
        tracing::Span::current().record("job.id", tracing::field::display(job.id));
    }
    Ok(job)
}

/// Claims one particular `available` job (due or not) and marks it `running`: how the
/// `manage` CLI runs the job it just queued. `None` when it is no longer available (the
/// server's worker got it first, or it does not exist).
#[tracing::instrument(name = "db.queue_jobs.claim_one", skip_all, fields(job.id = %id), err)]
pub async fn claim_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<Option<Job>, StorageError> {
    let row: Option<JobRow> = sqlx::query_as(concat!(
        "UPDATE queue_jobs SET status = 'running', started_at = $2 \
         WHERE queue_job_id = $1 AND status = 'available' \
         RETURNING ",
        job_columns!()
    ))
    .bind(id.to_string())
    .bind(clock.now_unix_ms())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Job::try_from).transpose()
}

/// When the next `available` job is due, if any (how long the worker may sleep).
#[tracing::instrument(name = "db.queue_jobs.next_due", skip_all, err)]
pub async fn next_job_due_at(conn: &mut AnyConnection) -> Result<Option<i64>, StorageError> {
    let due: Option<i64> =
        sqlx::query_scalar("SELECT MIN(scheduled_at) FROM queue_jobs WHERE status = 'available'")
            .fetch_one(&mut *conn)
            .await?;
    Ok(due)
}

/// Marks a running job done. Fails with [`StorageError::JobNotRunning`] otherwise.
#[tracing::instrument(name = "db.queue_jobs.complete", skip_all, fields(job.id = %id), err)]
pub async fn complete_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<(), StorageError> {
    let changed = rows::stamp(
        &mut *conn,
        "UPDATE queue_jobs SET status = 'completed', completed_at = $2 \
         WHERE queue_job_id = $1 AND status = 'running'",
        id,
        clock.now_unix_ms(),
    )
    .await?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StorageError::JobNotRunning(id))
    }
}

/// Marks a running job `failed` with `reason`; with `retry_at`, also schedules the next
/// attempt (same queue and payload, attempt + 1; see [`crate::model::retry_delay`]) and
/// returns it. Fails with [`StorageError::JobNotRunning`] if the job is not running.
#[tracing::instrument(name = "db.queue_jobs.fail", skip_all, fields(job.id = %id), err)]
pub async fn fail_job(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    id: Ulid,
    reason: &str,
    retry_at: Option<i64>,
) -> Result<Option<Job>, StorageError> {
    end_attempt(conn, clock, rng, id, JobStatus::Failed, reason, retry_at).await
}

/// After a restart: every job still `running` was interrupted by the death of the previous
/// process. Each is marked `lost` and retried at `retry_at`; returns the new attempts.
#[tracing::instrument(name = "db.queue_jobs.recover_lost", skip_all, err)]
pub async fn recover_lost_jobs(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    retry_at: i64,
) -> Result<Vec<Job>, StorageError> {
    recover_stale_jobs(conn, clock, rng, i64::MAX, retry_at).await
}

/// [`recover_lost_jobs`] for the jobs claimed before `started_before` only (Unix ms): a job
/// running far longer than any job can means its process died (a `manage` command killed
/// mid-job, while the server kept running).
#[tracing::instrument(name = "db.queue_jobs.recover_stale", skip_all, err)]
pub async fn recover_stale_jobs(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    started_before: i64,
    retry_at: i64,
) -> Result<Vec<Job>, StorageError> {
    let running = list_jobs(conn, JobStatus::Running, i64::MAX).await?;
    let stale = running
        .into_iter()
        .filter(|job| job.started_at.is_none_or(|at| at < started_before));
    let mut retries = Vec::new();
    for job in stale {
        let reason = "the process stopped while the job was running";
        let ended = end_attempt(
            conn,
            clock,
            rng,
            job.id,
            JobStatus::Lost,
            reason,
            Some(retry_at),
        )
        .await;
        match ended {
            Ok(retry) => retries.extend(retry),
            // It finished between the listing and now: not lost after all.
            Err(StorageError::JobNotRunning(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(retries)
}

/// Ends a running attempt as `failed` or `lost`, with an optional retry, atomically (a
/// savepoint when the caller is already in a transaction).
async fn end_attempt(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    id: Ulid,
    status: JobStatus,
    reason: &str,
    retry_at: Option<i64>,
) -> Result<Option<Job>, StorageError> {
    let now = clock.now_unix_ms();
    let mut tx = conn.begin().await?;
    let job = find_job(&mut tx, id)
        .await?
        .filter(|job| job.status == JobStatus::Running)
        .ok_or(StorageError::JobNotRunning(id))?;
    let retry = match retry_at {
        Some(run_at) => {
            let next = new_ulid(now, rng);
            let attempt = job.attempt.saturating_add(1);
            Some(
                insert(
                    &mut tx,
                    next,
                    &job.queue_name,
                    &job.payload,
                    attempt,
                    run_at,
                    now,
                )
                .await?,
            )
        }
        None => None,
    };
    let result = sqlx::query(
        "UPDATE queue_jobs \
         SET status = $2, failed_at = $3, failed_reason = $4, next_attempt_id = $5 \
         WHERE queue_job_id = $1 AND status = 'running'",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(now)
    .bind(reason)
    .bind(retry.as_ref().map(|job| job.id.to_string()))
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() != 1 {
        return Err(StorageError::JobNotRunning(id));
    }
    tx.commit().await?;
    Ok(retry)
}

/// The job with this id.
#[tracing::instrument(name = "db.queue_jobs.find", skip_all, fields(job.id = %id), err)]
pub async fn find_job(conn: &mut AnyConnection, id: Ulid) -> Result<Option<Job>, StorageError> {
    let row: Option<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM queue_jobs WHERE queue_job_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Job::try_from).transpose()
}

/// Up to `limit` jobs with this status, in the order they are due.
#[tracing::instrument(name = "db.queue_jobs.list", skip_all, fields(job.status = %status), err)]
pub async fn list_jobs(
    conn: &mut AnyConnection,
    status: JobStatus,
    limit: i64,
) -> Result<Vec<Job>, StorageError> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM queue_jobs WHERE status = $1 ORDER BY scheduled_at, queue_job_id LIMIT $2"
    ))
    .bind(status.as_str())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Job::try_from).collect()
}

#[cfg(test)]
mod tests;
