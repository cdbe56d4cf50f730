//! Tests of `recovery`, on both backends: round trips, the hash's uniqueness, and a ticket that
//! works once, never after its hour, and for exactly one of two racing uses.

use std::time::Duration;

use super::*;
use crate::model::UserEmail;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};
use crate::storage::{Database, emails};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Alice with a verified address, a request for it and one ticket.
async fn setup(t: &mut TestDb) -> (UserEmail, RecoverySession, RecoveryTicket) {
    let alice = t.user("alice").await;
    let email = emails::add_email(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        alice.id,
        "alice@example.com",
        true,
    )
    .await
    .unwrap();
    let session = add_recovery_session(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "alice@example.com",
        Some("192.0.2.7"),
        Some("Firefox"),
    )
    .await
    .unwrap();
    let ticket = add_recovery_ticket(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewRecoveryTicket {
            session_id: session.id,
            user_email_id: email.id,
            user_id: alice.id,
            ticket_sha256: SHA,
        },
    )
    .await
    .unwrap();
    (email, session, ticket)
}

async fn sessions_and_tickets_round_trip(db: Database) {
    let mut t = migrated(db).await;
    let (email, session, ticket) = setup(&mut t).await;
    let found = find_recovery_session(&mut t.conn, session.id)
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&session));
    assert_eq!(session.consumed_at, None);
    assert_eq!(session.ip_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        find_recovery_session(&mut t.conn, Ulid::nil())
            .await
            .unwrap(),
        None
    );
    let found = find_recovery_ticket(&mut t.conn, SHA).await.unwrap();
    assert_eq!(found.as_ref(), Some(&ticket));
    assert_eq!(ticket.user_email_id, email.id);
    assert_eq!(
        ticket.expires_at,
        t.clock.now_unix_ms() + RECOVERY_TICKET_LIFETIME_MS
    );
    assert_eq!(
        find_recovery_ticket(&mut t.conn, "unknown").await.unwrap(),
        None
    );
}

async fn a_ticket_hash_is_stored_once(db: Database) {
    let mut t = migrated(db).await;
    let (email, session, ticket) = setup(&mut t).await;
    let again = add_recovery_ticket(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewRecoveryTicket {
            session_id: session.id,
            user_email_id: email.id,
            user_id: ticket.user_id,
            ticket_sha256: SHA,
        },
    )
    .await;
    assert!(
        matches!(again, Err(StorageError::TokenCollision)),
        "{again:?}"
    );
}

async fn a_ticket_is_used_once_and_consumes_its_session(db: Database) {
    let mut t = migrated(db).await;
    let (_, session, ticket) = setup(&mut t).await;
    t.clock.advance(Duration::from_secs(60));
    assert!(
        use_recovery_ticket(&mut t.conn, &t.clock, &ticket)
            .await
            .unwrap()
    );
    let used = find_recovery_ticket(&mut t.conn, SHA)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.used_at, Some(t.clock.now_unix_ms()));
    assert!(!used.is_usable(t.clock.now_unix_ms()));
    let consumed = find_recovery_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumed.consumed_at, Some(t.clock.now_unix_ms()));
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !use_recovery_ticket(&mut t.conn, &t.clock, &ticket)
            .await
            .unwrap(),
        "a second use is refused"
    );
}

async fn an_expired_ticket_cannot_be_used(db: Database) {
    let mut t = migrated(db).await;
    let (_, session, ticket) = setup(&mut t).await;
    t.clock.advance(Duration::from_millis(
        RECOVERY_TICKET_LIFETIME_MS as u64 - 1,
    ));
    assert!(ticket.is_usable(t.clock.now_unix_ms()));
    t.clock.advance(Duration::from_millis(1));
    assert!(!ticket.is_usable(t.clock.now_unix_ms()));
    assert!(
        !use_recovery_ticket(&mut t.conn, &t.clock, &ticket)
            .await
            .unwrap()
    );
    let found = find_recovery_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.consumed_at, None,
        "an expired ticket consumes nothing"
    );
}

async fn of_two_racing_uses_exactly_one_wins(db: Database) {
    let mut t = migrated(db).await;
    let (_, _, ticket) = setup(&mut t).await;
    let mut first = t.db.pool().begin().await.unwrap();
    assert!(
        use_recovery_ticket(&mut first, &t.clock, &ticket)
            .await
            .unwrap()
    );
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let racing = ticket.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let won = use_recovery_ticket(&mut tx, &clock, &racing).await.unwrap();
        tx.commit().await.unwrap();
        won
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap(), "the second use loses");
}

test_on_both_backends!(
    sessions_and_tickets_round_trip,
    a_ticket_hash_is_stored_once,
    a_ticket_is_used_once_and_consumes_its_session,
    an_expired_ticket_cannot_be_used,
    of_two_racing_uses_exactly_one_wins,
);
