//! Tests of the job queue, on both backends, including two workers racing for one job.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::model::retry_delay;
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

async fn enqueued_job_is_claimed_then_completed(db: Database) {
    let mut t = migrated(db).await;
    let payload = json!({"user_id": "01HQZX3Y4Z5A6B7C8D9E0F1G2H"});
    let job = enqueue_job(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "provision-user",
        &payload,
    )
    .await
    .unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Available, 0));
    assert_eq!(
        next_job_due_at(&mut t.conn).await.unwrap(),
        Some(job.scheduled_at)
    );

    t.clock.advance(Duration::from_millis(5));
    let claimed = claim_next_job(&mut t.conn, &t.clock)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.payload, payload);
    assert_eq!(claimed.started_at, Some(t.clock.now_unix_ms()));
    assert_eq!(claim_next_job(&mut t.conn, &t.clock).await.unwrap(), None);
    assert_eq!(next_job_due_at(&mut t.conn).await.unwrap(), None);

    complete_job(&mut t.conn, &t.clock, job.id).await.unwrap();
    let done = find_job(&mut t.conn, job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.completed_at, Some(t.clock.now_unix_ms()));
    let error = complete_job(&mut t.conn, &t.clock, job.id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::JobNotRunning(id) if id == job.id),
        "{error:?}"
    );
}

/// Claims the next job and returns its id.
async fn claim(t: &mut TestDb) -> Option<Ulid> {
    let job = claim_next_job(&mut t.conn, &t.clock).await.unwrap();
    job.map(|job| job.id)
}

async fn jobs_are_claimed_when_due_oldest_first(db: Database) {
    let mut t = migrated(db).await;
    let now = t.clock.now_unix_ms();
    let later = schedule_job(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "q",
        &json!(1),
        now + 60_000,
    )
    .await
    .unwrap();
    let first = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(2))
        .await
        .unwrap();
    t.clock.advance(Duration::from_millis(1));
    let second = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(3))
        .await
        .unwrap();

    assert_eq!(claim(&mut t).await, Some(first.id));
    assert_eq!(claim(&mut t).await, Some(second.id));
    assert_eq!(claim(&mut t).await, None);
    assert_eq!(
        next_job_due_at(&mut t.conn).await.unwrap(),
        Some(now + 60_000)
    );
    t.clock.advance(Duration::from_secs(60));
    assert_eq!(claim(&mut t).await, Some(later.id));
}

async fn failure_schedules_a_linked_retry(db: Database) {
    let mut t = migrated(db).await;
    let job = enqueue_job(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "delete-device",
        &json!({"d": 1}),
    )
    .await
    .unwrap();
    claim_next_job(&mut t.conn, &t.clock)
        .await
        .unwrap()
        .unwrap();
    let now = t.clock.now_unix_ms();
    let retry_at = now + i64::try_from(retry_delay(0).as_millis()).unwrap();
    let retry = fail_job(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        job.id,
        "Synapse: 503",
        Some(retry_at),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((retry.status, retry.attempt), (JobStatus::Available, 1));
    assert_eq!(
        (retry.queue_name.as_str(), &retry.payload),
        ("delete-device", &job.payload)
    );
    assert_eq!(retry.scheduled_at, retry_at);

    let failed = find_job(&mut t.conn, job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failed_at, Some(now));
    assert_eq!(failed.failed_reason.as_deref(), Some("Synapse: 503"));
    assert_eq!(failed.next_attempt_id, Some(retry.id));
    assert_eq!(
        find_job(&mut t.conn, retry.id).await.unwrap(),
        Some(retry.clone())
    );

    // Not due yet; then claimed and given up on without a retry.
    assert_eq!(claim_next_job(&mut t.conn, &t.clock).await.unwrap(), None);
    t.clock.advance(retry_delay(0));
    claim_next_job(&mut t.conn, &t.clock)
        .await
        .unwrap()
        .unwrap();
    let none = fail_job(&mut t.conn, &t.clock, &mut t.rng, retry.id, "gave up", None)
        .await
        .unwrap();
    assert_eq!(none, None);
    let error = fail_job(&mut t.conn, &t.clock, &mut t.rng, retry.id, "again", None)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::JobNotRunning(_)), "{error:?}");
    assert_eq!(
        list_jobs(&mut t.conn, JobStatus::Failed, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn running_jobs_are_recovered_as_lost_after_a_restart(db: Database) {
    let mut t = migrated(db).await;
    let running = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!("a"))
        .await
        .unwrap();
    let waiting = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!("b"))
        .await
        .unwrap();
    claim_next_job(&mut t.conn, &t.clock).await.unwrap();

    let now = t.clock.now_unix_ms();
    let retries = recover_lost_jobs(&mut t.conn, &t.clock, &mut t.rng, now)
        .await
        .unwrap();
    assert_eq!(retries.len(), 1);
    assert_eq!((retries[0].attempt, &retries[0].payload), (1, &json!("a")));
    let lost = find_job(&mut t.conn, running.id).await.unwrap().unwrap();
    assert_eq!(lost.status, JobStatus::Lost);
    assert_eq!(lost.next_attempt_id, Some(retries[0].id));

    let available: Vec<_> = list_jobs(&mut t.conn, JobStatus::Available, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(available.len(), 2);
    assert!(available.contains(&waiting.id) && available.contains(&retries[0].id));
    assert_eq!(
        list_jobs(&mut t.conn, JobStatus::Available, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn enqueue_rolls_back_with_the_callers_transaction(db: Database) {
    let t = migrated(db).await;
    let mut rng = t.rng.clone();
    let mut tx = t.db.pool().begin().await.unwrap();
    enqueue_job(&mut tx, &t.clock, &mut rng, "q", &json!(null))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut conn = t.conn;
    assert_eq!(
        list_jobs(&mut conn, JobStatus::Available, 10)
            .await
            .unwrap(),
        []
    );
}

async fn racing_claims_give_the_job_to_one_worker(db: Database) {
    let mut t = migrated(db).await;
    let job = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(1))
        .await
        .unwrap();

    let mut first = t.db.pool().begin().await.unwrap();
    let claimed = claim_next_job(&mut first, &t.clock).await.unwrap().unwrap();
    assert_eq!(claimed.id, job.id);
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let claimed = claim_next_job(&mut tx, &clock).await.unwrap();
        tx.commit().await.unwrap();
        claimed
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), None);
}

test_on_both_backends!(
    enqueued_job_is_claimed_then_completed,
    jobs_are_claimed_when_due_oldest_first,
    failure_schedules_a_linked_retry,
    running_jobs_are_recovered_as_lost_after_a_restart,
    enqueue_rolls_back_with_the_callers_transaction,
    racing_claims_give_the_job_to_one_worker,
);

async fn one_job_is_claimed_by_id_even_before_it_is_due(db: Database) {
    let mut t = migrated(db).await;
    let now = t.clock.now_unix_ms();
    let other = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(1))
        .await
        .unwrap();
    let later = schedule_job(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "q",
        &json!(2),
        now + 60_000,
    )
    .await
    .unwrap();
    let claimed = claim_job(&mut t.conn, &t.clock, later.id).await.unwrap();
    assert_eq!(
        claimed.map(|job| (job.id, job.status)),
        Some((later.id, JobStatus::Running))
    );
    assert_eq!(
        claim_job(&mut t.conn, &t.clock, later.id).await.unwrap(),
        None
    );
    assert_eq!(
        claim_job(&mut t.conn, &t.clock, Ulid::nil()).await.unwrap(),
        None
    );
    // The other job was left alone.
    assert_eq!(claim(&mut t).await, Some(other.id));
}

async fn only_jobs_running_since_before_the_cutoff_are_recovered(db: Database) {
    let mut t = migrated(db).await;
    let old = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(1))
        .await
        .unwrap();
    claim_job(&mut t.conn, &t.clock, old.id)
        .await
        .unwrap()
        .unwrap();
    t.clock.advance(Duration::from_secs(600));
    let cutoff = t.clock.now_unix_ms();
    let fresh = enqueue_job(&mut t.conn, &t.clock, &mut t.rng, "q", &json!(2))
        .await
        .unwrap();
    claim_job(&mut t.conn, &t.clock, fresh.id)
        .await
        .unwrap()
        .unwrap();
    let retries = recover_stale_jobs(&mut t.conn, &t.clock, &mut t.rng, cutoff, cutoff)
        .await
        .unwrap();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].payload, json!(1));
    let old = find_job(&mut t.conn, old.id).await.unwrap().unwrap();
    assert_eq!(old.status, JobStatus::Lost);
    let fresh = find_job(&mut t.conn, fresh.id).await.unwrap().unwrap();
    assert_eq!(fresh.status, JobStatus::Running);
}

test_on_both_backends!(
    one_job_is_claimed_by_id_even_before_it_is_due,
    only_jobs_running_since_before_the_cutoff_are_recovered,
);
