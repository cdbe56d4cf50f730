//! [`authenticate`](super::authenticate) without HTTP, on both backends: the refusals in their
//! order, the dummy verification, the rate limits and the hash upgrade.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Authenticated, PasswordLogin, PasswordRefusal, localpart_of};
use crate::app::testing::TestApp;
use crate::auth::account::AccountRefusal;
use crate::config::HashingAlgorithm;
use crate::crypto::passwords::{Hasher, PasswordManager};
use crate::ratelimit::{Quota, RateLimitConfig, RateLimiter};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, passwords, users};

const PASSWORD: &str = "correct horse";

/// One attempt from `ip` with the app's handles.
async fn attempt(
    app: &TestApp,
    ip: &str,
    username: &str,
    password: &str,
) -> Result<Authenticated, PasswordRefusal> {
    let manager = app.state.passwords.clone().unwrap();
    attempt_with(app, &manager, &app.state.limiter, ip, username, password).await
}

/// One attempt from `ip` with this manager and limiter.
async fn attempt_with(
    app: &TestApp,
    manager: &PasswordManager,
    limiter: &RateLimiter,
    ip: &str,
    username: &str,
    password: &str,
) -> Result<Authenticated, PasswordRefusal> {
    let login = PasswordLogin {
        db: &app.state.db,
        clock: &app.clock,
        limiter,
        manager,
        rng: &app.state.rng,
    };
    let ip: IpAddr = ip.parse().unwrap();
    login.authenticate(Some(ip), username, password).await
}

/// Stores `authenticated`'s upgrade in a transaction of its own; the active password's id.
async fn store(app: &TestApp, authenticated: &Authenticated) -> ulid::Ulid {
    let mut rng = app.state.rng.fork();
    let mut tx = app.state.db.begin_write().await.unwrap();
    let id = authenticated
        .store_upgrade(&mut tx, &app.clock, &mut rng)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn is_invalid(result: &Result<Authenticated, PasswordRefusal>) -> bool {
    matches!(result, Err(PasswordRefusal::InvalidCredentials))
}

async fn the_right_password_authenticates_and_anything_else_is_invalid(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", PASSWORD).await;
    app.user_without_password("bob").await;
    let manager = app.state.passwords.clone().unwrap();

    let authenticated = attempt(&app, "192.0.2.1", "alice", PASSWORD).await.unwrap();
    assert_eq!(authenticated.user.id, alice.id);
    assert_eq!(manager.verifications(), 1);

    // Wrong password, unknown user, no password: the same refusal, one verification each.
    let mut expected = 1;
    for (username, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("bob", PASSWORD)] {
        let result = attempt(&app, "192.0.2.2", username, password).await;
        assert!(is_invalid(&result), "{username}: {result:?}");
        expected += 1;
        assert_eq!(manager.verifications(), expected, "{username}");
    }
}

async fn the_account_state_is_told_only_with_the_right_password(db: Database) {
    let app = TestApp::new(db).await;
    let locked = app.user_with_password("locked", PASSWORD).await;
    let gone = app.user_with_password("gone", PASSWORD).await;
    let guest = app.user_with_password("guest", PASSWORD).await;
    let mut conn = app.state.db.acquire().await.unwrap();
    users::lock_user(&mut conn, &app.clock, locked.id)
        .await
        .unwrap();
    // Deactivated wins over locked.
    users::lock_user(&mut conn, &app.clock, gone.id)
        .await
        .unwrap();
    users::deactivate_user(&mut conn, &app.clock, gone.id)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET is_guest = $1 WHERE user_id = $2")
        .bind(true)
        .bind(guest.id.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    for (username, refusal) in [
        ("locked", AccountRefusal::Locked),
        ("gone", AccountRefusal::Deactivated),
        ("guest", AccountRefusal::Guest),
    ] {
        let result = attempt(&app, "192.0.2.1", username, "wrong").await;
        assert!(is_invalid(&result), "{username}: {result:?}");
        match attempt(&app, "192.0.2.2", username, PASSWORD).await {
            Err(PasswordRefusal::Account(got)) => assert_eq!(got, refusal, "{username}"),
            other => panic!("{username}: {other:?}"),
        }
    }
}

async fn rate_limits_come_before_the_password(db: Database) {
    let app = TestApp::new(db).await;
    app.user_with_password("alice", PASSWORD).await;
    app.user_with_password("bob", PASSWORD).await;
    let manager = app.state.passwords.clone().unwrap();

    // Per address: three attempts, then even the right password is refused unverified.
    for _ in 0..3 {
        let result = attempt(&app, "203.0.113.5", "alice", "wrong").await;
        assert!(is_invalid(&result), "{result:?}");
    }
    let verified = manager.verifications();
    let result = attempt(&app, "203.0.113.5", "alice", PASSWORD).await;
    assert!(
        matches!(result, Err(PasswordRefusal::RateLimited(_))),
        "{result:?}"
    );
    assert_eq!(manager.verifications(), verified);
    attempt(&app, "203.0.113.6", "alice", PASSWORD)
        .await
        .unwrap();

    // Per account, from another address each time (a small account quota, for the test).
    let limiter = RateLimiter::new(RateLimitConfig {
        login_per_account: Quota::new(2, 0.001),
        ..RateLimitConfig::default()
    });
    for n in 1..=2 {
        let ip = format!("198.51.100.{n}");
        let result = attempt_with(&app, &manager, &limiter, &ip, "bob", "wrong").await;
        assert!(is_invalid(&result), "{result:?}");
    }
    let result = attempt_with(&app, &manager, &limiter, "198.51.100.3", "bob", PASSWORD).await;
    assert!(
        matches!(result, Err(PasswordRefusal::RateLimited(_))),
        "{result:?}"
    );
    let result = attempt_with(&app, &manager, &limiter, "198.51.100.3", "alice", PASSWORD).await;
    assert!(
        result.is_ok(),
        "another account is not affected: {result:?}"
    );
}

async fn an_old_hash_is_upgraded_in_the_callers_transaction(db: Database) {
    let app = TestApp::new(db).await;
    let bcrypt = Hasher::new(HashingAlgorithm::Bcrypt, Some(4), None, false).unwrap();
    let old_hash = bcrypt.hash(PASSWORD, [9; 16]).unwrap();
    let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
    let manager = Arc::new(PasswordManager::new([(1, bcrypt), (2, argon2)], 0).unwrap());
    let mut conn = app.state.db.acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    let user = users::add_user(&mut conn, &app.clock, &mut rng, "alice")
        .await
        .unwrap();
    let old = passwords::add_password(&mut conn, &app.clock, &mut rng, user.id, &old_hash, 1, None)
        .await
        .unwrap();
    drop(conn);

    let log_in = || {
        attempt_with(
            &app,
            &manager,
            &app.state.limiter,
            "192.0.2.1",
            "alice",
            PASSWORD,
        )
    };
    let authenticated = log_in().await.unwrap();
    // Nothing is stored until the caller says so.
    let mut conn = app.state.db.acquire().await.unwrap();
    let active = passwords::active_password(&mut conn, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.id, old.id);

    // The new row must be newer (same-millisecond rows are ordered by their random id).
    app.clock.advance(Duration::from_secs(1));
    let new_id = store(&app, &authenticated).await;
    let active = passwords::active_password(&mut conn, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.id, new_id);
    assert_eq!(active.version, 2);
    assert_eq!(active.upgraded_from_id, Some(old.id));

    // The current scheme's hash is not upgraded again: the same id comes back.
    let again = log_in().await.unwrap();
    assert_eq!(store(&app, &again).await, new_id);
}

test_on_both_backends!(
    the_right_password_authenticates_and_anything_else_is_invalid,
    the_account_state_is_told_only_with_the_right_password,
    rate_limits_come_before_the_password,
    an_old_hash_is_upgraded_in_the_callers_transaction,
);

#[test]
fn localparts_come_from_mxids_of_this_server_only() {
    for (input, expected) in [
        ("alice", "alice"),
        (" alice ", "alice"),
        ("@alice:example.com", "alice"),
        ("mxid:@alice:example.com", "alice"),
        ("@alice:elsewhere.org", "@alice:elsewhere.org"),
    ] {
        assert_eq!(localpart_of(input, "example.com"), expected, "{input}");
    }
}
