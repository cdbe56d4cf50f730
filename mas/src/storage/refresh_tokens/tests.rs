//! Tests of `refresh_tokens`, on both backends, including two refreshes racing.

use std::time::Duration;

use super::*;
use crate::model::Session;
use crate::storage::Database;
use crate::storage::access_tokens::add_access_token;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn session(t: &mut TestDb) -> Session {
    let alice = t.user("alice").await;
    let client = t.client().await;
    t.oauth2_session(&client, Some(&alice), "openid").await
}

/// A refresh token paired with a fresh access token.
async fn pair(t: &mut TestDb, session: &Session, n: u8) -> RefreshToken {
    let access = add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, &sha(n), None)
        .await
        .unwrap();
    add_refresh_token(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        session.id,
        Some(access.id),
        &sha(n + 100),
    )
    .await
    .unwrap()
}

async fn added_token_is_found_by_hash_and_id(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let token = pair(&mut t, &session, 1).await;
    assert!(token.is_valid());
    assert!(token.access_token_id.is_some());
    assert_eq!(
        find_refresh_token_by_sha256(&mut t.conn, &sha(101))
            .await
            .unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        find_refresh_token(&mut t.conn, token.id).await.unwrap(),
        Some(token)
    );
    assert_eq!(
        find_refresh_token_by_sha256(&mut t.conn, &sha(1))
            .await
            .unwrap(),
        None
    );

    let alone = add_refresh_token(&mut t.conn, &t.clock, &mut t.rng, session.id, None, &sha(2))
        .await
        .unwrap();
    assert_eq!(
        find_refresh_token(&mut t.conn, alone.id).await.unwrap(),
        Some(alone)
    );
    let error = add_refresh_token(&mut t.conn, &t.clock, &mut t.rng, session.id, None, &sha(2))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

async fn consume_links_the_successor_once(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let old = pair(&mut t, &session, 1).await;
    let next = pair(&mut t, &session, 2).await;
    t.clock.advance(Duration::from_secs(1));
    assert!(
        consume_refresh_token(&mut t.conn, &t.clock, old.id, next.id)
            .await
            .unwrap()
    );
    let other = pair(&mut t, &session, 3).await;
    assert!(
        !consume_refresh_token(&mut t.conn, &t.clock, old.id, other.id)
            .await
            .unwrap()
    );
    let found = find_refresh_token(&mut t.conn, old.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.consumed_at, Some(t.clock.now_unix_ms()));
    assert_eq!(found.next_refresh_token_id, Some(next.id));
    assert!(!found.is_valid());
}

async fn concurrent_refreshes_have_exactly_one_winner(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let old = pair(&mut t, &session, 1).await;
    let next_a = pair(&mut t, &session, 2).await;
    let next_b = pair(&mut t, &session, 3).await;

    let mut first = t.db.pool().begin().await.unwrap();
    assert!(
        consume_refresh_token(&mut first, &t.clock, old.id, next_a.id)
            .await
            .unwrap()
    );
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let (old_id, next_id) = (old.id, next_b.id);
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let won = consume_refresh_token(&mut tx, &clock, old_id, next_id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        won
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
    let found = find_refresh_token(&mut t.conn, old.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.next_refresh_token_id, Some(next_a.id));
}

async fn successor_is_replaced_only_from_the_expected_one(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let old = pair(&mut t, &session, 1).await;
    let lost = pair(&mut t, &session, 2).await;
    let fresh = pair(&mut t, &session, 3).await;
    consume_refresh_token(&mut t.conn, &t.clock, old.id, lost.id)
        .await
        .unwrap();

    assert!(
        replace_refresh_token_successor(&mut t.conn, old.id, lost.id, fresh.id)
            .await
            .unwrap()
    );
    assert!(
        !replace_refresh_token_successor(&mut t.conn, old.id, lost.id, fresh.id)
            .await
            .unwrap()
    );
    let found = find_refresh_token(&mut t.conn, old.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.next_refresh_token_id, Some(fresh.id));
}

async fn revoked_token_cannot_be_consumed(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let token = pair(&mut t, &session, 1).await;
    let next = pair(&mut t, &session, 2).await;
    assert!(
        revoke_refresh_token(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );
    assert!(
        !revoke_refresh_token(&mut t.conn, &t.clock, token.id)
            .await
            .unwrap()
    );
    assert!(
        !consume_refresh_token(&mut t.conn, &t.clock, token.id, next.id)
            .await
            .unwrap()
    );
    let found = find_refresh_token(&mut t.conn, token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(t.clock.now_unix_ms()));
    assert_eq!(found.consumed_at, None);
}

async fn revoking_a_session_revokes_its_consumed_and_live_tokens_only(db: Database) {
    let mut t = migrated(db).await;
    let session = session(&mut t).await;
    let client = t.client().await;
    let other = t.oauth2_session(&client, None, "openid").await;
    let consumed = pair(&mut t, &session, 1).await;
    let live = pair(&mut t, &session, 2).await;
    let elsewhere = pair(&mut t, &other, 3).await;
    consume_refresh_token(&mut t.conn, &t.clock, consumed.id, live.id)
        .await
        .unwrap();

    t.clock.advance(Duration::from_secs(1));
    assert_eq!(
        revoke_session_refresh_tokens(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap(),
        2
    );
    let now = t.clock.now_unix_ms();
    for (token, revoked_at) in [(consumed, Some(now)), (live, Some(now)), (elsewhere, None)] {
        let found = find_refresh_token(&mut t.conn, token.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.revoked_at, revoked_at);
    }
    t.clock.advance(Duration::from_secs(1));
    assert_eq!(
        revoke_session_refresh_tokens(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap(),
        0
    );
}

test_on_both_backends!(
    revoking_a_session_revokes_its_consumed_and_live_tokens_only,
    added_token_is_found_by_hash_and_id,
    consume_links_the_successor_once,
    concurrent_refreshes_have_exactly_one_winner,
    successor_is_replaced_only_from_the_expected_one,
    revoked_token_cannot_be_consumed,
);
