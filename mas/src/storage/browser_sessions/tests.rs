//! Tests of `browser_sessions`, on both backends.

use std::time::Duration;

use ulid::Ulid;

use super::*;
use crate::storage::testing::{migrated, test_on_both_backends};
use crate::storage::{Database, passwords, users};

async fn started_session_is_found_with_its_user_until_finished(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let session = start_browser_session(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        &alice,
        Some("Firefox"),
        Some("192.0.2.7"),
    )
    .await
    .unwrap();
    assert!(session.is_active());
    assert_eq!(session.last_active_at, Some(session.created_at));
    let found = find_active_browser_session(&mut t.conn, session.id)
        .await
        .unwrap();
    assert_eq!(found, Some(session.clone()));

    t.clock.advance(Duration::from_secs(60));
    assert!(
        finish_browser_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    assert!(
        !finish_browser_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    assert_eq!(
        find_active_browser_session(&mut t.conn, session.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        find_active_browser_session(&mut t.conn, Ulid::nil())
            .await
            .unwrap(),
        None
    );
}

async fn found_session_carries_the_current_user_state(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let session = t.browser_session(&alice).await;
    users::lock_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap();
    let found = find_active_browser_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user.locked_at, Some(t.clock.now_unix_ms()));
    assert_eq!(found.user.username, "alice");
}

async fn finish_all_ends_only_that_users_active_sessions(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let first = t.browser_session(&alice).await;
    let second = t.browser_session(&alice).await;
    let bobs = t.browser_session(&bob).await;
    finish_browser_session(&mut t.conn, &t.clock, first.id)
        .await
        .unwrap();

    assert_eq!(
        finish_all_browser_sessions(&mut t.conn, &t.clock, alice.id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        find_active_browser_session(&mut t.conn, second.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        find_active_browser_session(&mut t.conn, bobs.id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn activity_is_recorded(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let session = t.browser_session(&alice).await;
    let at = t.clock.now_unix_ms() + 5_000;
    let recorded =
        record_browser_session_activity(&mut t.conn, session.id, at, Some("2001:db8::1"))
            .await
            .unwrap();
    assert!(recorded);
    let found = find_active_browser_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_active_at, Some(at));
    assert_eq!(found.last_active_ip.as_deref(), Some("2001:db8::1"));
    assert!(
        !record_browser_session_activity(&mut t.conn, Ulid::nil(), at, None)
            .await
            .unwrap()
    );
}

async fn last_authentication_is_the_newest(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let session = t.browser_session(&alice).await;
    assert_eq!(
        last_authentication(&mut t.conn, session.id).await.unwrap(),
        None
    );

    let password =
        passwords::add_password(&mut t.conn, &t.clock, &mut t.rng, alice.id, "$h", 1, None)
            .await
            .unwrap();
    let method = AuthenticationMethod::Password {
        user_password_id: password.id,
    };
    let first = record_authentication(&mut t.conn, &t.clock, &mut t.rng, session.id, method)
        .await
        .unwrap();
    assert_eq!(
        last_authentication(&mut t.conn, session.id).await.unwrap(),
        Some(first)
    );

    t.clock.advance(Duration::from_secs(300));
    let upstream = AuthenticationMethod::Upstream {
        upstream_oauth_authorization_session_id: Ulid::from_parts(1, 2),
    };
    let second = record_authentication(&mut t.conn, &t.clock, &mut t.rng, session.id, upstream)
        .await
        .unwrap();
    let last = last_authentication(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last, second);
    assert_eq!(last.created_at, t.clock.now_unix_ms());
}

test_on_both_backends!(
    started_session_is_found_with_its_user_until_finished,
    found_session_carries_the_current_user_state,
    finish_all_ends_only_that_users_active_sessions,
    activity_is_recorded,
    last_authentication_is_the_newest,
);
