//! Tests of `compat`, on both backends.

use std::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::model::{CompatSession, User};
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};
use crate::storage::{Database, StorageError};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

async fn session(t: &mut TestDb, user: &User, device_id: &str, admin: bool) -> CompatSession {
    let new = NewCompatSession {
        user_id: user.id,
        device_id,
        user_session_id: None,
        is_synapse_admin: admin,
        user_agent: Some("Element/1.0"),
        human_name: Some("My phone"),
    };
    add_compat_session(&mut t.conn, &t.clock, &mut t.rng, new)
        .await
        .unwrap()
}

async fn session_is_found_and_listed_by_user_and_device(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let first = session(&mut t, &alice, "DEVICE1", false).await;
    t.clock.advance(Duration::from_millis(1));
    let admin = session(&mut t, &alice, "DEVICE2", true).await;
    let _bobs = session(&mut t, &bob, "DEVICE1", false).await;

    assert_eq!(
        find_compat_session(&mut t.conn, first.id).await.unwrap(),
        Some(first.clone())
    );
    let found_admin = find_compat_session(&mut t.conn, admin.id)
        .await
        .unwrap()
        .unwrap();
    assert!(found_admin.is_synapse_admin);
    assert_eq!(found_admin.human_name.as_deref(), Some("My phone"));
    assert_eq!(
        list_active_compat_sessions(&mut t.conn, alice.id)
            .await
            .unwrap(),
        vec![first.clone(), admin.clone()]
    );
    assert_eq!(
        find_active_compat_sessions_by_device(&mut t.conn, alice.id, "DEVICE1")
            .await
            .unwrap(),
        vec![first]
    );
    assert!(
        find_active_compat_sessions_by_device(&mut t.conn, alice.id, "NOPE")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn finishing_a_session_revokes_its_tokens_once(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let s = session(&mut t, &alice, "DEVICE1", false).await;
    let ttl = Some(Duration::from_secs(300));
    let access = add_compat_access_token(&mut t.conn, &t.clock, &mut t.rng, s.id, SHA_A, ttl)
        .await
        .unwrap();
    let refresh =
        add_compat_refresh_token(&mut t.conn, &t.clock, &mut t.rng, s.id, access.id, SHA_B)
            .await
            .unwrap();
    t.clock.advance(Duration::from_secs(1));

    assert!(
        finish_compat_session(&mut t.conn, &t.clock, s.id)
            .await
            .unwrap()
    );
    assert!(
        !finish_compat_session(&mut t.conn, &t.clock, s.id)
            .await
            .unwrap()
    );
    let now = t.clock.now_unix_ms();
    let found = find_compat_session(&mut t.conn, s.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.finished_at, Some(now));
    assert!(!found.is_active());
    let access = find_compat_access_token_by_sha256(&mut t.conn, SHA_A)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.revoked_at, Some(now));
    let refresh_found = find_compat_refresh_token_by_sha256(&mut t.conn, SHA_B)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refresh_found.id, refresh.id);
    assert_eq!(refresh_found.revoked_at, Some(now));
    assert!(!refresh_found.is_valid());
    assert!(
        list_active_compat_sessions(&mut t.conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn access_tokens_expire_are_revoked_and_collide_by_hash(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let s = session(&mut t, &alice, "DEVICE1", false).await;
    let forever = add_compat_access_token(&mut t.conn, &t.clock, &mut t.rng, s.id, SHA_A, None)
        .await
        .unwrap();
    assert_eq!(forever.expires_at, None);
    let short = add_compat_access_token(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        s.id,
        SHA_B,
        Some(Duration::from_secs(300)),
    )
    .await
    .unwrap();
    assert_eq!(short.expires_at, Some(short.created_at + 300_000));
    assert_eq!(
        find_compat_access_token_by_sha256(&mut t.conn, SHA_B)
            .await
            .unwrap(),
        Some(short.clone())
    );
    t.clock.advance(Duration::from_secs(300));
    let now = t.clock.now_unix_ms();
    assert!(forever.is_valid(now));
    assert!(!short.is_valid(now));

    let error = add_compat_access_token(&mut t.conn, &t.clock, &mut t.rng, s.id, SHA_A, None)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");

    assert!(
        mark_compat_access_token_first_used(&mut t.conn, &t.clock, forever.id)
            .await
            .unwrap()
    );
    assert!(
        !mark_compat_access_token_first_used(&mut t.conn, &t.clock, forever.id)
            .await
            .unwrap()
    );
    assert!(
        revoke_compat_access_token(&mut t.conn, &t.clock, forever.id)
            .await
            .unwrap()
    );
    assert!(
        !revoke_compat_access_token(&mut t.conn, &t.clock, forever.id)
            .await
            .unwrap()
    );
    let found = find_compat_access_token_by_sha256(&mut t.conn, SHA_A)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.first_used_at, Some(now));
    assert!(!found.is_valid(now));
    assert_eq!(
        find_compat_access_token_by_sha256(&mut t.conn, SHA_C)
            .await
            .unwrap(),
        None
    );
}

async fn refresh_token_is_consumed_once_and_collides_by_hash(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let s = session(&mut t, &alice, "DEVICE1", false).await;
    let access = add_compat_access_token(&mut t.conn, &t.clock, &mut t.rng, s.id, SHA_A, None)
        .await
        .unwrap();
    let refresh =
        add_compat_refresh_token(&mut t.conn, &t.clock, &mut t.rng, s.id, access.id, SHA_B)
            .await
            .unwrap();
    assert!(refresh.is_valid());
    assert_eq!(
        find_compat_refresh_token_by_sha256(&mut t.conn, SHA_B)
            .await
            .unwrap(),
        Some(refresh.clone())
    );
    assert!(
        consume_compat_refresh_token(&mut t.conn, &t.clock, refresh.id)
            .await
            .unwrap()
    );
    assert!(
        !consume_compat_refresh_token(&mut t.conn, &t.clock, refresh.id)
            .await
            .unwrap()
    );
    let found = find_compat_refresh_token_by_sha256(&mut t.conn, SHA_B)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.consumed_at, Some(t.clock.now_unix_ms()));
    let error = add_compat_refresh_token(&mut t.conn, &t.clock, &mut t.rng, s.id, access.id, SHA_B)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

test_on_both_backends!(
    session_is_found_and_listed_by_user_and_device,
    finishing_a_session_revokes_its_tokens_once,
    access_tokens_expire_are_revoked_and_collide_by_hash,
    refresh_token_is_consumed_once_and_collides_by_hash,
);
