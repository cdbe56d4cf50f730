//! Tests of `users`, on both backends.

use std::time::Duration;

use ulid::Ulid;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{migrated, test_on_both_backends};

async fn added_user_is_found_by_id_and_username(db: Database) {
    let mut t = migrated(db).await;
    let alice = add_user(&mut t.conn, &t.clock, &mut t.rng, "alice")
        .await
        .unwrap();
    assert_eq!(alice.created_at, t.clock.now_unix_ms());
    assert!(alice.is_valid() && !alice.can_request_admin && !alice.is_guest);
    assert_eq!(alice.id.timestamp_ms(), 1_704_067_200_000);

    assert_eq!(
        find_user(&mut t.conn, alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        find_user_by_username(&mut t.conn, "alice").await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        find_user_by_username(&mut t.conn, "Alice").await.unwrap(),
        None
    );
    assert_eq!(find_user(&mut t.conn, Ulid::nil()).await.unwrap(), None);
}

async fn duplicate_username_is_username_taken(db: Database) {
    let mut t = migrated(db).await;
    add_user(&mut t.conn, &t.clock, &mut t.rng, "alice")
        .await
        .unwrap();
    let error = add_user(&mut t.conn, &t.clock, &mut t.rng, "alice")
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::UsernameTaken), "{error:?}");
    assert_eq!(error.to_string(), "the username is already taken");
}

async fn lock_keeps_the_first_time_and_unlock_clears_it(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    t.clock.advance(Duration::from_secs(10));
    let locked = lock_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap()
        .unwrap();
    let locked_at = t.clock.now_unix_ms();
    assert_eq!(locked.locked_at, Some(locked_at));
    assert!(!locked.is_valid());

    t.clock.advance(Duration::from_secs(10));
    let again = lock_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.locked_at, Some(locked_at));

    let unlocked = unlock_user(&mut t.conn, alice.id).await.unwrap().unwrap();
    assert_eq!(unlocked, alice);
    assert_eq!(
        lock_user(&mut t.conn, &t.clock, Ulid::nil()).await.unwrap(),
        None
    );
    assert_eq!(unlock_user(&mut t.conn, Ulid::nil()).await.unwrap(), None);
}

async fn deactivate_and_reactivate(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let deactivated = deactivate_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deactivated.deactivated_at, Some(t.clock.now_unix_ms()));
    assert!(!deactivated.is_valid());
    let found = find_user(&mut t.conn, alice.id).await.unwrap().unwrap();
    assert_eq!(found, deactivated);
    let reactivated = reactivate_user(&mut t.conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reactivated, alice);
    assert_eq!(
        deactivate_user(&mut t.conn, &t.clock, Ulid::nil())
            .await
            .unwrap(),
        None
    );
}

async fn can_request_admin_is_set_and_cleared(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let admin = set_can_request_admin(&mut t.conn, alice.id, true)
        .await
        .unwrap()
        .unwrap();
    assert!(admin.can_request_admin);
    let found = find_user_by_username(&mut t.conn, "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(found.can_request_admin);
    let plain = set_can_request_admin(&mut t.conn, alice.id, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(plain, alice);
    assert_eq!(
        set_can_request_admin(&mut t.conn, Ulid::nil(), true)
            .await
            .unwrap(),
        None
    );
}

test_on_both_backends!(
    added_user_is_found_by_id_and_username,
    duplicate_username_is_username_taken,
    lock_keeps_the_first_time_and_unlock_clears_it,
    deactivate_and_reactivate,
    can_request_admin_is_set_and_cleared,
);
