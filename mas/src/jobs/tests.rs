//! Tests of the job handlers and the worker against a real database (both backends) and the
//! recording [`MockHomeserver`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::worker::{MAX_FAILED_ATTEMPTS, run_due_jobs};
use super::*;
use crate::homeserver::{
    FieldAction, MockCall, MockFailure, MockHomeserver, MockUser, ProvisionRequest,
};
use crate::model::{JobStatus, User, retry_delay};
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};
use crate::storage::{Database, emails, jobs as store, oauth2_sessions, users};

const DEVICE_SCOPE: &str = "openid urn:matrix:client:api:* urn:matrix:client:device:ALICEPHONE";
const UNSTABLE_DEVICE_SCOPE: &str = "openid urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:ALICETABLET";

struct Harness {
    t: TestDb,
    ctx: JobContext,
    hs: Arc<MockHomeserver>,
}

async fn harness(db: Database) -> Harness {
    let t = migrated(db).await;
    let hs = Arc::new(MockHomeserver::new("example.com"));
    let ctx = JobContext {
        db: t.db.clone(),
        clock: Arc::new(t.clock.clone()),
        rng: RngSource::seeded(7),
        homeserver: hs.clone(),
        jobs: JobWaker::new(),
        mail: None,
    };
    Harness { t, ctx, hs }
}

/// Runs every due job; how many ran.
async fn run_due(ctx: &JobContext) -> usize {
    run_due_jobs(ctx, &CancellationToken::new()).await.unwrap()
}

impl Harness {
    async fn queue(&mut self, job: &Job) -> Ulid {
        let queued = store::enqueue_job(
            &mut self.t.conn,
            &self.t.clock,
            &mut self.t.rng,
            job.queue_name(),
            &job.payload(),
        )
        .await
        .unwrap();
        queued.id
    }

    async fn job(&mut self, id: Ulid) -> crate::model::Job {
        store::find_job(&mut self.t.conn, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn jobs_with(&mut self, status: JobStatus) -> Vec<crate::model::Job> {
        store::list_jobs(&mut self.t.conn, status, 100)
            .await
            .unwrap()
    }

    /// A user known to the homeserver too.
    async fn provisioned_user(&mut self, username: &str) -> User {
        let user = self.t.user(username).await;
        self.hs.insert_user(username, MockUser::default());
        user
    }
}

async fn provisioning_sends_verified_emails_lock_flag_and_display_name_then_syncs_devices(
    db: Database,
) {
    let mut h = harness(db).await;
    let alice = h.t.user("alice").await;
    let (clock, rng) = (&h.t.clock, &mut h.t.rng);
    emails::add_email(
        &mut h.t.conn,
        clock,
        rng,
        alice.id,
        "alice@example.com",
        true,
    )
    .await
    .unwrap();
    emails::add_email(
        &mut h.t.conn,
        clock,
        rng,
        alice.id,
        "unproven@example.com",
        false,
    )
    .await
    .unwrap();
    users::lock_user(&mut h.t.conn, clock, alice.id)
        .await
        .unwrap();
    let client = h.t.client().await;
    h.t.oauth2_session(&client, Some(&alice), DEVICE_SCOPE)
        .await;

    let id = h
        .queue(&Job::ProvisionUserWithDisplayName {
            user_id: alice.id,
            display_name: "Alice".to_owned(),
        })
        .await;
    assert_eq!(
        run_due(&h.ctx).await,
        2,
        "provision-user, then the sync it queued"
    );

    let expected = ProvisionRequest {
        display_name: FieldAction::Set("Alice".to_owned()),
        emails: FieldAction::Set(vec!["alice@example.com".to_owned()]),
        locked: Some(true),
        ..ProvisionRequest::new("alice")
    };
    let devices: BTreeSet<String> = ["ALICEPHONE".to_owned()].into();
    assert_eq!(
        h.hs.calls(),
        [
            MockCall::ProvisionUser(expected),
            MockCall::SyncDevices("alice".to_owned(), devices.clone()),
        ]
    );
    assert_eq!(h.hs.devices("alice"), devices);
    assert_eq!(h.job(id).await.status, JobStatus::Completed);
    assert_eq!(h.jobs_with(JobStatus::Completed).await.len(), 2);
}

async fn a_failed_attempt_is_retried_after_the_backoff(db: Database) {
    let mut h = harness(db).await;
    let alice = h.t.user("alice").await;
    h.hs.set_failure(Some(MockFailure::Unreachable));
    let id = h.queue(&Job::ProvisionUser { user_id: alice.id }).await;

    assert_eq!(run_due(&h.ctx).await, 1);
    let failed = h.job(id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed
            .failed_reason
            .as_deref()
            .unwrap()
            .contains("unreachable"),
        "{failed:?}"
    );
    let retry = h.job(failed.next_attempt_id.unwrap()).await;
    assert_eq!(retry.attempt, 1);
    let backoff = i64::try_from(retry_delay(0).as_millis()).unwrap();
    assert_eq!(retry.scheduled_at, h.t.clock.now_unix_ms() + backoff);

    // Not due yet: nothing runs, nothing is called.
    h.hs.set_failure(None);
    h.hs.take_calls();
    assert_eq!(run_due(&h.ctx).await, 0);
    assert!(h.hs.calls().is_empty());

    h.t.clock.advance(retry_delay(0));
    assert_eq!(run_due(&h.ctx).await, 2);
    assert!(h.hs.user("alice").is_some());
    assert_eq!(h.job(retry.id).await.status, JobStatus::Completed);
}

async fn a_poisoned_payload_fails_for_good_and_the_worker_goes_on(db: Database) {
    let mut h = harness(db).await;
    let (conn, clock, rng) = (&mut h.t.conn, &h.t.clock, &mut h.t.rng);
    let bad_id = store::enqueue_job(conn, clock, rng, "provision-user", &json!({"user_id": 42}))
        .await
        .unwrap();
    let unknown = store::enqueue_job(conn, clock, rng, "no-such-queue", &json!({}))
        .await
        .unwrap();
    let nobody = Job::SyncDevices {
        user_id: Ulid::from_parts(1, 1),
    };
    let nobody = h.queue(&nobody).await;
    let alice = h.t.user("alice").await;
    let good = h.queue(&Job::ProvisionUser { user_id: alice.id }).await;

    assert_eq!(
        run_due(&h.ctx).await,
        5,
        "three bad jobs, provision and its sync"
    );
    for (id, reason) in [
        (bad_id.id, "invalid payload for provision-user"),
        (unknown.id, "unknown queue"),
        (nobody, "no user with id"),
    ] {
        let job = h.job(id).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(
            job.failed_reason.as_deref().unwrap().contains(reason),
            "{job:?}"
        );
        assert_eq!(job.next_attempt_id, None, "not retried: {job:?}");
    }
    assert_eq!(h.job(good).await.status, JobStatus::Completed);
    assert!(h.hs.user("alice").is_some());
}

async fn unexpected_homeserver_errors_are_given_up_after_some_attempts(db: Database) {
    let mut h = harness(db).await;
    // Known to MAS but not to the homeserver: sync_devices answers 404, which will not change.
    let alice = h.t.user("alice").await;
    let mut id = h.queue(&Job::SyncDevices { user_id: alice.id }).await;
    for attempt in 0..MAX_FAILED_ATTEMPTS {
        assert_eq!(run_due(&h.ctx).await, 1, "attempt {attempt}");
        let job = h.job(id).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(
            job.failed_reason.as_deref().unwrap().contains("404"),
            "{job:?}"
        );
        match job.next_attempt_id {
            Some(next) => id = next,
            None => {
                assert_eq!(attempt, MAX_FAILED_ATTEMPTS - 1);
                return;
            }
        }
        h.t.clock.advance(retry_delay(attempt));
    }
    panic!("never given up");
}

async fn the_device_set_is_every_active_sessions_device(db: Database) {
    let mut h = harness(db).await;
    let alice = h.provisioned_user("alice").await;
    let client = h.t.client().await;
    h.t.oauth2_session(&client, Some(&alice), DEVICE_SCOPE)
        .await;
    h.t.oauth2_session(&client, Some(&alice), UNSTABLE_DEVICE_SCOPE)
        .await;
    h.t.oauth2_session(&client, Some(&alice), "openid").await;
    let gone =
        h.t.oauth2_session(
            &client,
            Some(&alice),
            "urn:matrix:client:device:OLDDEVICE00",
        )
        .await;
    oauth2_sessions::finish_oauth2_session(&mut h.t.conn, &h.t.clock, gone.id)
        .await
        .unwrap();
    h.hs.insert_user(
        "alice",
        MockUser {
            devices: [("STRAYDEVICE".to_owned(), None)].into(),
            ..MockUser::default()
        },
    );

    h.queue(&Job::SyncDevices { user_id: alice.id }).await;
    assert_eq!(run_due(&h.ctx).await, 1);
    let expected: BTreeSet<String> = ["ALICEPHONE".to_owned(), "ALICETABLET".to_owned()].into();
    assert_eq!(h.hs.devices("alice"), expected);
}

async fn a_device_is_deleted_unless_a_session_holds_it_again(db: Database) {
    let mut h = harness(db).await;
    let alice = h.provisioned_user("alice").await;
    h.hs.upsert_device("alice", "OLDDEVICE00", None)
        .await
        .unwrap();
    h.hs.upsert_device("alice", "ALICEPHONE", None)
        .await
        .unwrap();
    let client = h.t.client().await;
    h.t.oauth2_session(&client, Some(&alice), DEVICE_SCOPE)
        .await;
    h.hs.take_calls();

    for device_id in ["OLDDEVICE00", "ALICEPHONE"] {
        let job = Job::DeleteDevice {
            user_id: alice.id,
            device_id: device_id.to_owned(),
        };
        h.queue(&job).await;
    }
    // A user the homeserver does not know has no device to delete: done, not failed.
    let bob = h.t.user("bob").await;
    let bob_job = Job::DeleteDevice {
        user_id: bob.id,
        device_id: "BOBDEVICE00".to_owned(),
    };
    let bob_job = h.queue(&bob_job).await;

    assert_eq!(run_due(&h.ctx).await, 3);
    // Jobs queued in the same millisecond run in id order, which is random: sort.
    let mut calls = h.hs.calls();
    calls.sort_by_key(|call| format!("{call:?}"));
    assert_eq!(
        calls,
        [
            MockCall::DeleteDevice("alice".to_owned(), "OLDDEVICE00".to_owned()),
            MockCall::DeleteDevice("bob".to_owned(), "BOBDEVICE00".to_owned()),
        ]
    );
    assert_eq!(h.hs.devices("alice"), ["ALICEPHONE".to_owned()].into());
    assert_eq!(h.job(bob_job).await.status, JobStatus::Completed);
}

async fn deactivation_ends_sessions_removes_emails_and_deletes_the_user(db: Database) {
    let mut h = harness(db).await;
    let alice = h.provisioned_user("alice").await;
    let client = h.t.client().await;
    let session =
        h.t.oauth2_session(&client, Some(&alice), DEVICE_SCOPE)
            .await;
    let (clock, rng) = (&h.t.clock, &mut h.t.rng);
    let compat_session = crate::storage::compat::add_compat_session(
        &mut h.t.conn,
        clock,
        rng,
        crate::storage::compat::NewCompatSession {
            user_id: alice.id,
            device_id: "LEGACYDEV1",
            user_session_id: None,
            is_synapse_admin: false,
            user_agent: None,
            human_name: None,
        },
    )
    .await
    .unwrap();
    emails::add_email(
        &mut h.t.conn,
        clock,
        rng,
        alice.id,
        "alice@example.com",
        true,
    )
    .await
    .unwrap();
    users::deactivate_user(&mut h.t.conn, clock, alice.id)
        .await
        .unwrap();
    // Bob was reactivated before his job ran: nothing happens to him.
    let bob = h.provisioned_user("bob").await;

    for user_id in [alice.id, bob.id] {
        let job = Job::DeactivateUser {
            user_id,
            hs_erase: true,
        };
        h.queue(&job).await;
    }
    assert_eq!(run_due(&h.ctx).await, 2);
    assert_eq!(
        h.hs.calls(),
        [MockCall::DeleteUser("alice".to_owned(), true)]
    );
    let alice_hs = h.hs.user("alice").unwrap();
    assert!(alice_hs.deactivated && alice_hs.erased);
    let session = oauth2_sessions::find_oauth2_session(&mut h.t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!session.is_active());
    let compat_session =
        crate::storage::compat::find_compat_session(&mut h.t.conn, compat_session.id)
            .await
            .unwrap()
            .unwrap();
    assert!(!compat_session.is_active(), "legacy logins end too");
    assert!(
        emails::list_emails(&mut h.t.conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn reactivation_reactivates_then_provisions(db: Database) {
    let mut h = harness(db).await;
    let alice = h.provisioned_user("alice").await;
    h.queue(&Job::ReactivateUser { user_id: alice.id }).await;
    assert_eq!(run_due(&h.ctx).await, 3, "reactivate, provision, sync");
    let calls = h.hs.calls();
    assert_eq!(calls[0], MockCall::ReactivateUser("alice".to_owned()));
    assert!(matches!(calls[1], MockCall::ProvisionUser(_)), "{calls:?}");
}

async fn run_job_now_runs_the_job_and_its_follow_ups_once(db: Database) {
    let mut h = harness(db).await;
    let alice = h.t.user("alice").await;
    let id = h.queue(&Job::ProvisionUser { user_id: alice.id }).await;
    let report = run_job_now(&h.ctx, id).await.unwrap();
    let queues: Vec<&str> = report
        .steps
        .iter()
        .map(|(queue, _)| queue.as_str())
        .collect();
    assert_eq!(queues, ["provision-user", "sync-devices"]);
    assert!(report.all_completed());
    assert_eq!(run_due(&h.ctx).await, 0, "nothing left for the worker");

    // Already taken (by the server's worker): not run twice.
    let report = run_job_now(&h.ctx, id).await.unwrap();
    assert_eq!(
        report.steps,
        [("provision-user".to_owned(), Outcome::NotClaimed)]
    );
}

async fn run_job_now_reports_a_failure_and_leaves_the_retry_queued(db: Database) {
    let mut h = harness(db).await;
    let alice = h.t.user("alice").await;
    h.hs.set_failure(Some(MockFailure::Unreachable));
    let id = h.queue(&Job::ProvisionUser { user_id: alice.id }).await;
    let report = run_job_now(&h.ctx, id).await.unwrap();
    assert!(!report.all_completed());
    let (queue, outcome) = report.first_failure().unwrap();
    assert_eq!(queue, "provision-user");
    assert!(matches!(outcome, Outcome::Retrying { .. }), "{outcome:?}");
    assert_eq!(h.jobs_with(JobStatus::Available).await.len(), 1);
}

async fn the_worker_recovers_lost_jobs_wakes_on_demand_and_stops(db: Database) {
    let mut h = harness(db).await;
    let alice = h.t.user("alice").await;
    // Left running by a process that died.
    let lost = h.queue(&Job::ProvisionUser { user_id: alice.id }).await;
    store::claim_job(&mut h.t.conn, &h.t.clock, lost)
        .await
        .unwrap()
        .unwrap();

    let shutdown = CancellationToken::new();
    let worker = worker::spawn(h.ctx.clone(), shutdown.clone());
    wait_for_user(&h.hs, "alice").await;
    assert_eq!(h.job(lost).await.status, JobStatus::Lost);

    // A job queued later runs on the wake-up, long before the idle poll.
    let bob = h.t.user("bob").await;
    h.queue(&Job::ProvisionUser { user_id: bob.id }).await;
    h.ctx.jobs.wake();
    wait_for_user(&h.hs, "bob").await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
}

/// Waits up to 10 s (well below the worker's idle poll) for the homeserver to know `localpart`.
async fn wait_for_user(hs: &MockHomeserver, localpart: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hs.user(localpart).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{localpart} never provisioned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

test_on_both_backends!(
    provisioning_sends_verified_emails_lock_flag_and_display_name_then_syncs_devices,
    a_failed_attempt_is_retried_after_the_backoff,
    a_poisoned_payload_fails_for_good_and_the_worker_goes_on,
    unexpected_homeserver_errors_are_given_up_after_some_attempts,
    the_device_set_is_every_active_sessions_device,
    a_device_is_deleted_unless_a_session_holds_it_again,
    deactivation_ends_sessions_removes_emails_and_deletes_the_user,
    reactivation_reactivates_then_provisions,
    run_job_now_runs_the_job_and_its_follow_ups_once,
    run_job_now_reports_a_failure_and_leaves_the_retry_queued,
    the_worker_recovers_lost_jobs_wakes_on_demand_and_stops,
);

#[tokio::test]
async fn user_locks_serialize_one_user_and_not_others() {
    let waker = JobWaker::new();
    let (alice, bob) = (Ulid::from_parts(1, 1), Ulid::from_parts(1, 2));
    let held = waker.lock_user(alice).await;
    let blocked = tokio::time::timeout(Duration::from_millis(50), waker.lock_user(alice)).await;
    assert!(blocked.is_err(), "a second lock of the same user waits");
    let other = tokio::time::timeout(Duration::from_millis(50), waker.lock_user(bob)).await;
    assert!(other.is_ok(), "another user's lock does not wait");
    drop(held);
    let again = tokio::time::timeout(Duration::from_secs(5), waker.lock_user(alice)).await;
    assert!(again.is_ok());
}

#[test]
fn every_job_round_trips_through_its_stored_form() {
    let user_id = Ulid::from_parts(1_704_067_200_000, 42);
    let jobs = [
        Job::ProvisionUser { user_id },
        Job::SyncDevices { user_id },
        Job::DeleteDevice {
            user_id,
            device_id: "ABCDEFGHIJ".to_owned(),
        },
        Job::DeactivateUser {
            user_id,
            hs_erase: true,
        },
        Job::ProvisionUserWithDisplayName {
            user_id,
            display_name: "Alice".to_owned(),
        },
        Job::ReactivateUser { user_id },
        Job::SendRecoveryEmails {
            session_id: user_id,
        },
    ];
    for job in jobs {
        let back = Job::from_stored(job.queue_name(), &job.payload()).unwrap();
        assert_eq!(back, job);
    }
}

#[test]
fn bad_payloads_are_errors_not_panics() {
    let unknown = Job::from_stored("nope", &serde_json::json!({}));
    assert!(matches!(unknown, Err(PayloadError::UnknownQueue(_))));
    for payload in [
        serde_json::json!({}),
        serde_json::json!({ "user_id": 7 }),
        serde_json::json!({ "user_id": "not-a-ulid" }),
        serde_json::json!("text"),
    ] {
        let err = Job::from_stored(queues::PROVISION_USER, &payload).unwrap_err();
        assert!(matches!(err, PayloadError::Invalid { .. }), "{payload}");
    }
    let missing_device = serde_json::json!({ "user_id": Ulid::nil().to_string() });
    assert!(Job::from_stored(queues::DELETE_DEVICE, &missing_device).is_err());
}

#[tokio::test]
async fn a_wake_before_the_wait_is_not_lost() {
    let waker = JobWaker::new();
    waker.clone().wake();
    tokio::time::timeout(std::time::Duration::from_secs(5), waker.woken())
        .await
        .unwrap();
}

async fn queue_stores_the_job_for_the_worker(db: Database) {
    let mut h = harness(db).await;
    let job = Job::DeleteDevice {
        user_id: Ulid::from_parts(1, 1),
        device_id: "ABCDEFGHIJ".to_owned(),
    };
    let mut rng = h.ctx.rng.fork();
    queue(&mut h.t.conn, &h.t.clock, &mut rng, &job)
        .await
        .unwrap();
    let stored = h.jobs_with(JobStatus::Available).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].queue_name, "delete-device");
    assert_eq!(
        Job::from_stored(&stored[0].queue_name, &stored[0].payload).unwrap(),
        job
    );
}

test_on_both_backends!(queue_stores_the_job_for_the_worker);

/// What an endpoint does: queue in its transaction, commit, `state.jobs.wake()`; the
/// server's worker (built from the same state) runs the job at once.
async fn a_job_queued_by_a_request_handler_runs_on_the_wake_up(db: Database) {
    let app = crate::app::testing::TestApp::new(db).await;
    let state = &app.state;
    let shutdown = CancellationToken::new();
    let worker = worker::spawn(JobContext::from(state), shutdown.clone());
    // Let the worker reach its idle sleep (30 s) first, so only the wake-up can start the job.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut rng = state.rng.fork();
    let mut tx = state.db.begin_write().await.unwrap();
    let alice = users::add_user(&mut tx, state.clock.as_ref(), &mut rng, "alice")
        .await
        .unwrap();
    let job = Job::ProvisionUser { user_id: alice.id };
    queue(&mut tx, state.clock.as_ref(), &mut rng, &job)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    state.jobs.wake();

    wait_for_user(&app.homeserver, "alice").await;
    shutdown.cancel();
    worker.await.unwrap();
}

test_on_both_backends!(a_job_queued_by_a_request_handler_runs_on_the_wake_up);
