//! Tests of `access_tokens`, on both backends.

use std::time::Duration;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{migrated, test_on_both_backends};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

async fn added_token_is_found_by_hash_and_id(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let ttl = Some(Duration::from_secs(300));
    let token = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, ttl)
        .await
        .unwrap();
    assert_eq!(token.expires_at, Some(token.created_at + 300_000));
    assert!(token.is_valid(t.clock.now_unix_ms()));
    assert_eq!(
        find_access_token_by_sha256(&mut t.conn, SHA_A)
            .await
            .unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        find_access_token(&mut t.conn, token.id).await.unwrap(),
        Some(token)
    );
    assert_eq!(
        find_access_token_by_sha256(&mut t.conn, SHA_B)
            .await
            .unwrap(),
        None
    );

    let forever = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_B, None)
        .await
        .unwrap();
    assert_eq!(forever.expires_at, None);
    assert_eq!(
        find_access_token(&mut t.conn, forever.id).await.unwrap(),
        Some(forever)
    );
}

async fn same_hash_twice_is_token_collision(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, None, "").await;
    add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
        .await
        .unwrap();
    let error = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

async fn revoke_and_first_use_are_recorded_once(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, None, "").await;
    let token = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
        .await
        .unwrap();

    t.clock.advance(Duration::from_secs(1));
    let first_use = t.clock.now_unix_ms();
    assert!(
        mark_access_token_first_used(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !mark_access_token_first_used(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );

    let revoked_at = t.clock.now_unix_ms();
    assert!(
        revoke_access_token(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !revoke_access_token(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );

    let found = find_access_token(&mut t.conn, token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.first_used_at, Some(first_use));
    assert_eq!(found.revoked_at, Some(revoked_at));
    assert!(!found.is_valid(t.clock.now_unix_ms()));
    assert!(
        !revoke_access_token(&mut t.conn, &t.clock, Ulid::nil())
            .await
            .unwrap()
    );
}

async fn revoking_a_session_revokes_only_its_live_tokens(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, None, "").await;
    let other = t.oauth2_session(&client, None, "").await;
    let old = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
        .await
        .unwrap();
    let live = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_B, None)
        .await
        .unwrap();
    let sha_c = "c".repeat(64);
    let elsewhere = add_access_token(&mut t.conn, &t.clock, &mut t.rng, other.id, &sha_c, None)
        .await
        .unwrap();
    revoke_access_token(&mut t.conn, &t.clock, old.id)
        .await
        .unwrap();
    let old_revoked_at = t.clock.now_unix_ms();

    t.clock.advance(Duration::from_secs(1));
    assert_eq!(
        revoke_session_access_tokens(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap(),
        1
    );
    let now = t.clock.now_unix_ms();
    for (token, revoked_at) in [
        (old, Some(old_revoked_at)),
        (live, Some(now)),
        (elsewhere, None),
    ] {
        let found = find_access_token(&mut t.conn, token.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.revoked_at, revoked_at);
    }
    assert_eq!(
        revoke_session_access_tokens(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap(),
        0
    );
}

test_on_both_backends!(
    added_token_is_found_by_hash_and_id,
    same_hash_twice_is_token_collision,
    revoke_and_first_use_are_recorded_once,
    revoking_a_session_revokes_only_its_live_tokens,
);
