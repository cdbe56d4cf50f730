//! Tests of `oauth2_sessions`, on both backends.

use std::time::Duration;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{migrated, test_on_both_backends};

async fn created_session_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let browser = t.browser_session(&alice).await;
    let new = NewSession {
        client_id: client.id,
        user_id: Some(alice.id),
        user_session_id: Some(browser.id),
        scope: "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ"
            .parse()
            .unwrap(),
        user_agent: Some("ElementX/1.0".to_owned()),
        human_name: Some("My phone".to_owned()),
    };
    let session = create_oauth2_session(&mut t.conn, &t.clock, &mut t.rng, new.clone())
        .await
        .unwrap();
    assert_eq!(session.scope, new.scope);
    assert!(session.is_active());
    assert_eq!(
        find_oauth2_session(&mut t.conn, session.id).await.unwrap(),
        Some(session)
    );
    assert_eq!(
        find_oauth2_session(&mut t.conn, Ulid::nil()).await.unwrap(),
        None
    );
}

async fn client_credentials_session_has_no_user(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, None, "urn:mas:admin").await;
    let found = find_oauth2_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, None);
    assert_eq!(found.scope.to_string(), "urn:mas:admin");
}

async fn finish_is_conditional(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    t.clock.advance(Duration::from_secs(1));
    assert!(
        finish_oauth2_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    let finished_at = t.clock.now_unix_ms();
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !finish_oauth2_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    let found = find_oauth2_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.finished_at, Some(finished_at));
}

async fn active_sessions_are_listed_and_finished_per_user(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let client = t.client().await;
    let first = t.oauth2_session(&client, Some(&alice), "openid").await;
    t.clock.advance(Duration::from_millis(1));
    let second = t.oauth2_session(&client, Some(&alice), "email").await;
    let finished = t.oauth2_session(&client, Some(&alice), "openid").await;
    let bobs = t.oauth2_session(&client, Some(&bob), "openid").await;
    finish_oauth2_session(&mut t.conn, &t.clock, finished.id)
        .await
        .unwrap();

    let active = list_active_oauth2_sessions(&mut t.conn, alice.id)
        .await
        .unwrap();
    assert_eq!(active, [first, second]);

    assert_eq!(
        finish_all_oauth2_sessions(&mut t.conn, &t.clock, alice.id)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        list_active_oauth2_sessions(&mut t.conn, alice.id)
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        list_active_oauth2_sessions(&mut t.conn, bob.id)
            .await
            .unwrap(),
        [bobs]
    );
}

async fn activity_is_recorded(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let at = t.clock.now_unix_ms() + 42;
    assert!(
        record_oauth2_session_activity(&mut t.conn, session.id, at, Some("198.51.100.4"))
            .await
            .unwrap()
    );
    let found = find_oauth2_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_active_at, Some(at));
    assert_eq!(found.last_active_ip.as_deref(), Some("198.51.100.4"));
    assert!(
        !record_oauth2_session_activity(&mut t.conn, Ulid::nil(), at, None)
            .await
            .unwrap()
    );
}

test_on_both_backends!(
    created_session_round_trips,
    client_credentials_session_has_no_user,
    finish_is_conditional,
    active_sessions_are_listed_and_finished_per_user,
    activity_is_recorded,
);
