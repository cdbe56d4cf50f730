//! Tests of `registrations`, on both backends: tokens (round trips, the unique text, revoking,
//! the conditional use and exactly one winner of two racing uses of a one-use token) and
//! registrations (round trip, the steps, completing once).

use std::time::Duration;

use super::*;
use crate::model::RegistrationTokenState;
use crate::storage::Database;
use crate::storage::testing::{migrated, test_on_both_backends};

fn new_registration(token: Option<Ulid>) -> NewRegistration {
    NewRegistration {
        username: "alice".to_owned(),
        email: Some("alice@example.com".to_owned()),
        hashed_password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        hashed_password_version: 1,
        terms_url: Some("https://example.com/tos".to_owned()),
        registration_token_id: token,
        post_auth_action: Some(serde_json::json!({"kind": "manage_account", "id": ""})),
        ip_address: Some("192.0.2.7".to_owned()),
        user_agent: Some("Firefox".to_owned()),
    }
}

async fn tokens_round_trip_and_are_unique(db: Database) {
    let mut t = migrated(db).await;
    let expires = t.clock.now_unix_ms() + 60_000;
    let token = add_registration_token(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "abc",
        Some(3),
        Some(expires),
    )
    .await
    .unwrap();
    assert_eq!(
        token.state(t.clock.now_unix_ms()),
        RegistrationTokenState::Active
    );
    let found = find_registration_token_by_token(&mut t.conn, "abc")
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&token));
    let by_id = find_registration_token(&mut t.conn, token.id)
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&token));
    assert_eq!(
        find_registration_token_by_token(&mut t.conn, "ABC")
            .await
            .unwrap(),
        None
    );
    let again = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "abc", None, None).await;
    assert!(matches!(again, Err(StorageError::RegistrationTokenExists)));
    t.clock.advance(Duration::from_millis(1));
    let open = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "open", None, None)
        .await
        .unwrap();
    let listed = list_registration_tokens(&mut t.conn).await.unwrap();
    assert_eq!(listed, vec![token, open]);
}

async fn revoked_expired_and_used_up_tokens_are_not_used(db: Database) {
    let mut t = migrated(db).await;
    let now = t.clock.now_unix_ms();
    let once = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "once", Some(1), None)
        .await
        .unwrap();
    assert!(
        use_registration_token(&mut t.conn, &t.clock, once.id)
            .await
            .unwrap()
    );
    assert!(
        !use_registration_token(&mut t.conn, &t.clock, once.id)
            .await
            .unwrap()
    );
    let used = find_registration_token(&mut t.conn, once.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.times_used, 1);
    assert_eq!(used.last_used_at, Some(now));
    assert_eq!(used.state(now), RegistrationTokenState::UsedUp);

    let soon = add_registration_token(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        "soon",
        None,
        Some(now + 1000),
    )
    .await
    .unwrap();
    assert!(
        use_registration_token(&mut t.conn, &t.clock, soon.id)
            .await
            .unwrap()
    );
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !use_registration_token(&mut t.conn, &t.clock, soon.id)
            .await
            .unwrap()
    );

    let open = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "open", None, None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(
            use_registration_token(&mut t.conn, &t.clock, open.id)
                .await
                .unwrap()
        );
    }
    assert!(
        revoke_registration_token(&mut t.conn, &t.clock, open.id)
            .await
            .unwrap()
    );
    assert!(
        !revoke_registration_token(&mut t.conn, &t.clock, open.id)
            .await
            .unwrap()
    );
    assert!(
        !use_registration_token(&mut t.conn, &t.clock, open.id)
            .await
            .unwrap()
    );
    let revoked = find_registration_token(&mut t.conn, open.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.times_used, 3);
    assert_eq!(revoked.state(now), RegistrationTokenState::Revoked);
    assert!(
        !use_registration_token(&mut t.conn, &t.clock, Ulid::nil())
            .await
            .unwrap()
    );
}

async fn racing_uses_of_a_one_use_token_have_exactly_one_winner(db: Database) {
    let mut t = migrated(db).await;
    let token = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "once", Some(1), None)
        .await
        .unwrap();
    let mut first = t.db.begin_write().await.unwrap();
    assert!(
        use_registration_token(&mut first, &t.clock, token.id)
            .await
            .unwrap()
    );
    let db = t.db.clone();
    let clock = t.clock.clone();
    let second = tokio::spawn(async move {
        let mut tx = db.begin_write().await.unwrap();
        let won = use_registration_token(&mut tx, &clock, token.id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        won
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
    let found = find_registration_token(&mut t.conn, token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.times_used, 1);
}

async fn registrations_round_trip_through_their_steps(db: Database) {
    let mut t = migrated(db).await;
    let token = add_registration_token(&mut t.conn, &t.clock, &mut t.rng, "t", None, None)
        .await
        .unwrap();
    let stored = add_registration(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        new_registration(Some(token.id)),
    )
    .await
    .unwrap();
    assert!(stored.needs_email_verification());
    let found = find_registration(&mut t.conn, stored.id).await.unwrap();
    assert_eq!(found.as_ref(), Some(&stored));
    assert_eq!(
        find_registration(&mut t.conn, Ulid::nil()).await.unwrap(),
        None
    );

    assert!(
        mark_registration_email_verified(&mut t.conn, &t.clock, stored.id)
            .await
            .unwrap()
    );
    assert!(
        !mark_registration_email_verified(&mut t.conn, &t.clock, stored.id)
            .await
            .unwrap()
    );
    assert!(
        set_registration_display_name(&mut t.conn, stored.id, Some("Alice"))
            .await
            .unwrap()
    );
    let found = find_registration(&mut t.conn, stored.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.needs_email_verification());
    assert_eq!(found.display_name.as_deref(), Some("Alice"));

    let alice = t.user("alice").await;
    assert!(
        complete_registration(&mut t.conn, &t.clock, stored.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !complete_registration(&mut t.conn, &t.clock, stored.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !set_registration_display_name(&mut t.conn, stored.id, None)
            .await
            .unwrap()
    );
    let done = find_registration(&mut t.conn, stored.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.completed_at, Some(t.clock.now_unix_ms()));
    assert_eq!(done.user_id, Some(alice.id));

    let mut bare = new_registration(None);
    bare.email = None;
    bare.terms_url = None;
    bare.post_auth_action = None;
    bare.ip_address = None;
    bare.user_agent = None;
    let bare = add_registration(&mut t.conn, &t.clock, &mut t.rng, bare)
        .await
        .unwrap();
    assert!(!bare.needs_email_verification());
    let found = find_registration(&mut t.conn, bare.id).await.unwrap();
    assert_eq!(found.as_ref(), Some(&bare));
}

test_on_both_backends!(
    tokens_round_trip_and_are_unique,
    revoked_expired_and_used_up_tokens_are_not_used,
    racing_uses_of_a_one_use_token_have_exactly_one_winner,
    registrations_round_trip_through_their_steps,
);
