//! Tests of `device_grants`, on both backends: round trips, the code collisions, polling, the
//! stage changes and their conditions (expiry, once only, exactly one of two racing exchanges).

use std::time::Duration;

use super::*;
use crate::model::{DEVICE_CODE_MIN_POLL_GAP_MS, DeviceGrantStage, Session};
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

const DEVICE_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn request(client_id: Ulid, device_code_sha256: &str, user_code: &str) -> NewDeviceGrant {
    NewDeviceGrant {
        client_id,
        scope: "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ"
            .parse()
            .unwrap(),
        device_code_sha256: device_code_sha256.to_owned(),
        user_code: user_code.to_owned(),
        ip_address: Some("192.0.2.7".to_owned()),
        user_agent: Some("Element X/1.0".to_owned()),
    }
}

/// A pending grant, a browser session of alice and a session to exchange into.
async fn setup(t: &mut TestDb) -> (DeviceGrant, Ulid, Session) {
    let alice = t.user("alice").await;
    let client = t.client().await;
    let browser = t.browser_session(&alice).await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let grant = add_device_grant(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        request(client.id, DEVICE_SHA, "ABCDEFGH"),
    )
    .await
    .unwrap();
    (grant, browser.id, session)
}

async fn added_grant_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let (grant, _, _) = setup(&mut t).await;
    assert_eq!(grant.stage(), DeviceGrantStage::Pending);
    assert_eq!(
        grant.expires_at,
        t.clock.now_unix_ms() + DEVICE_CODE_LIFETIME_MS
    );
    let by_id = find_device_grant(&mut t.conn, grant.id).await.unwrap();
    assert_eq!(by_id.as_ref(), Some(&grant));
    let by_device = find_device_grant_by_device_code(&mut t.conn, DEVICE_SHA)
        .await
        .unwrap();
    assert_eq!(by_device.as_ref(), Some(&grant));
    let by_user = find_device_grant_by_user_code(&mut t.conn, "ABCDEFGH")
        .await
        .unwrap();
    assert_eq!(by_user.as_ref(), Some(&grant));
    for missing in [
        find_device_grant(&mut t.conn, Ulid::nil()).await.unwrap(),
        find_device_grant_by_device_code(&mut t.conn, "00")
            .await
            .unwrap(),
        find_device_grant_by_user_code(&mut t.conn, "ABCDEFGX")
            .await
            .unwrap(),
    ] {
        assert_eq!(missing, None);
    }

    let mut bare = request(grant.request.client_id, "other-sha", "ZZZZZZZZ");
    bare.ip_address = None;
    bare.user_agent = None;
    let stored = add_device_grant(&mut t.conn, &t.clock, &mut t.rng, bare.clone())
        .await
        .unwrap();
    let found = find_device_grant(&mut t.conn, stored.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.request, bare);
}

async fn taken_codes_are_token_collisions(db: Database) {
    let mut t = migrated(db).await;
    let (grant, _, _) = setup(&mut t).await;
    let client_id = grant.request.client_id;
    for (device, user) in [(DEVICE_SHA, "QQQQQQQQ"), ("fresh-sha", "ABCDEFGH")] {
        let error = add_device_grant(
            &mut t.conn,
            &t.clock,
            &mut t.rng,
            request(client_id, device, user),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, StorageError::TokenCollision),
            "{device}/{user}: {error:?}"
        );
    }
}

async fn polls_closer_than_the_gap_are_refused(db: Database) {
    let mut t = migrated(db).await;
    let (grant, _, _) = setup(&mut t).await;
    let gap = DEVICE_CODE_MIN_POLL_GAP_MS;
    let start = t.clock.now_unix_ms();
    assert!(
        record_poll(&mut t.conn, grant.id, start, gap)
            .await
            .unwrap()
    );
    assert!(
        !record_poll(&mut t.conn, grant.id, start + 1, gap)
            .await
            .unwrap()
    );
    assert!(
        !record_poll(&mut t.conn, grant.id, start + gap - 1, gap)
            .await
            .unwrap()
    );
    // A refused poll does not move the time: the next one after the gap is fine.
    assert!(
        record_poll(&mut t.conn, grant.id, start + gap, gap)
            .await
            .unwrap()
    );
    let found = find_device_grant(&mut t.conn, grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_polled_at, Some(start + gap));
}

async fn approval_happens_once_and_only_before_expiry(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, _) = setup(&mut t).await;
    assert!(
        fulfill_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
            .await
            .unwrap()
    );
    assert!(
        !fulfill_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
            .await
            .unwrap()
    );
    assert!(
        !reject_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
            .await
            .unwrap()
    );
    let found = find_device_grant(&mut t.conn, grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.stage(), DeviceGrantStage::Fulfilled);
    assert_eq!(found.user_session_id, Some(browser_id));
    assert_eq!(found.fulfilled_at, Some(t.clock.now_unix_ms()));

    let late = add_device_grant(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        request(grant.request.client_id, "late-sha", "LLLLLLLL"),
    )
    .await
    .unwrap();
    t.clock
        .advance(Duration::from_millis(DEVICE_CODE_LIFETIME_MS as u64));
    assert!(
        !fulfill_device_grant(&mut t.conn, &t.clock, late.id, browser_id)
            .await
            .unwrap()
    );
    assert!(
        !reject_device_grant(&mut t.conn, &t.clock, late.id, browser_id)
            .await
            .unwrap()
    );
}

async fn denial_ends_the_grant(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    assert!(
        reject_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
            .await
            .unwrap()
    );
    assert!(
        !fulfill_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
            .await
            .unwrap()
    );
    assert!(
        !exchange_device_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    let found = find_device_grant(&mut t.conn, grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.stage(), DeviceGrantStage::Rejected);
    assert_eq!(found.user_session_id, Some(browser_id));
}

async fn exchange_needs_approval_and_happens_once(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    assert!(
        !exchange_device_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    fulfill_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
        .await
        .unwrap();
    assert!(
        exchange_device_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    assert!(
        !exchange_device_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    let found = find_device_grant(&mut t.conn, grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.stage(), DeviceGrantStage::Exchanged);
    assert_eq!(found.session_id, Some(session.id));
}

async fn concurrent_exchanges_have_exactly_one_winner(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    fulfill_device_grant(&mut t.conn, &t.clock, grant.id, browser_id)
        .await
        .unwrap();
    let mut first = t.db.pool().begin().await.unwrap();
    assert!(
        exchange_device_grant(&mut first, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let (grant_id, session_id) = (grant.id, session.id);
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let won = exchange_device_grant(&mut tx, &clock, grant_id, session_id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        won
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
}

test_on_both_backends!(
    added_grant_round_trips,
    taken_codes_are_token_collisions,
    polls_closer_than_the_gap_are_refused,
    approval_happens_once_and_only_before_expiry,
    denial_ends_the_grant,
    exchange_needs_approval_and_happens_once,
    concurrent_exchanges_have_exactly_one_winner,
);
