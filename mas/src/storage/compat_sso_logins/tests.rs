//! Tests of `compat_sso_logins`, on both backends: round trip, fulfilment once, the token's
//! 30 s window and its single use.

use std::time::Duration;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

const TOKEN_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn redirect() -> Url {
    "https://client.example.com/cb?state=1".parse().unwrap()
}

/// A pending login, alice and a browser session of hers.
async fn setup(t: &mut TestDb) -> (CompatSsoLogin, Ulid, Ulid) {
    let alice = t.user("alice").await;
    let browser = t.browser_session(&alice).await;
    let login = add_compat_sso_login(&mut t.conn, &t.clock, &mut t.rng, redirect())
        .await
        .unwrap();
    (login, alice.id, browser.id)
}

async fn created_login_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let (login, _, _) = setup(&mut t).await;
    assert!(login.is_pending());
    assert_eq!(
        find_compat_sso_login(&mut t.conn, login.id).await.unwrap(),
        Some(login)
    );
    assert_eq!(
        find_compat_sso_login(&mut t.conn, Ulid::nil())
            .await
            .unwrap(),
        None
    );
}

async fn fulfilment_happens_once(db: Database) {
    let mut t = migrated(db).await;
    let (login, _, browser_id) = setup(&mut t).await;
    t.clock.advance(Duration::from_secs(5));
    assert!(
        fulfill_compat_sso_login(&mut t.conn, &t.clock, login.id, browser_id, TOKEN_SHA)
            .await
            .unwrap()
    );
    let found = find_compat_sso_login(&mut t.conn, login.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.is_pending());
    assert_eq!(found.user_session_id, Some(browser_id));
    assert_eq!(found.fulfilled_at, Some(t.clock.now_unix_ms()));
    assert!(
        !fulfill_compat_sso_login(&mut t.conn, &t.clock, login.id, browser_id, "ab")
            .await
            .unwrap()
    );
    assert!(
        !fulfill_compat_sso_login(&mut t.conn, &t.clock, Ulid::nil(), browser_id, "cd")
            .await
            .unwrap()
    );
}

async fn token_hash_collision_is_token_collision(db: Database) {
    let mut t = migrated(db).await;
    let (login, _, browser_id) = setup(&mut t).await;
    let other = add_compat_sso_login(&mut t.conn, &t.clock, &mut t.rng, redirect())
        .await
        .unwrap();
    fulfill_compat_sso_login(&mut t.conn, &t.clock, login.id, browser_id, TOKEN_SHA)
        .await
        .unwrap();
    let error = fulfill_compat_sso_login(&mut t.conn, &t.clock, other.id, browser_id, TOKEN_SHA)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

async fn token_exchanges_once_within_thirty_seconds(db: Database) {
    let mut t = migrated(db).await;
    let (login, alice_id, browser_id) = setup(&mut t).await;
    assert_eq!(
        exchange_login_token(&mut t.conn, &t.clock, TOKEN_SHA)
            .await
            .unwrap(),
        None,
        "not fulfilled yet"
    );
    fulfill_compat_sso_login(&mut t.conn, &t.clock, login.id, browser_id, TOKEN_SHA)
        .await
        .unwrap();
    t.clock.advance(Duration::from_secs(30));
    let exchanged = exchange_login_token(&mut t.conn, &t.clock, TOKEN_SHA)
        .await
        .unwrap();
    assert_eq!(
        exchanged,
        Some(ExchangedLogin {
            compat_sso_login_id: login.id,
            user_id: alice_id,
            user_session_id: browser_id,
        })
    );
    assert_eq!(
        exchange_login_token(&mut t.conn, &t.clock, TOKEN_SHA)
            .await
            .unwrap(),
        None,
        "second use"
    );
    let found = find_compat_sso_login(&mut t.conn, login.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.exchanged_at, Some(t.clock.now_unix_ms()));

    let session_id = Ulid::from_parts(1, 2);
    assert!(
        link_compat_session(&mut t.conn, login.id, session_id)
            .await
            .unwrap()
    );
    assert!(
        !link_compat_session(&mut t.conn, login.id, session_id)
            .await
            .unwrap()
    );
    let found = find_compat_sso_login(&mut t.conn, login.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.compat_session_id, Some(session_id));
}

async fn token_expires_thirty_seconds_after_fulfilment(db: Database) {
    let mut t = migrated(db).await;
    let (login, _, browser_id) = setup(&mut t).await;
    fulfill_compat_sso_login(&mut t.conn, &t.clock, login.id, browser_id, TOKEN_SHA)
        .await
        .unwrap();
    t.clock.advance(Duration::from_millis(30_001));
    assert_eq!(
        exchange_login_token(&mut t.conn, &t.clock, TOKEN_SHA)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        exchange_login_token(&mut t.conn, &t.clock, "0".repeat(64).as_str())
            .await
            .unwrap(),
        None,
        "unknown token"
    );
}

test_on_both_backends!(
    created_login_round_trips,
    fulfilment_happens_once,
    token_hash_collision_is_token_collision,
    token_exchanges_once_within_thirty_seconds,
    token_expires_thirty_seconds_after_fulfilment,
);
