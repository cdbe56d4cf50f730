//! Tests of `email_authentications`, on both backends: round trips of both purposes, the code's
//! shape, and every outcome of checking a code (right, wrong, too many, expired, used, racing).

use std::time::Duration;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

/// An authentication for adding an address to alice's account.
async fn add_for_alice(t: &mut TestDb) -> EmailAuthentication {
    let alice = t.user("alice").await;
    let browser = t.browser_session(&alice).await;
    let purpose = EmailAuthenticationPurpose::AddEmail {
        user_id: alice.id,
        browser_session_id: browser.id,
    };
    add_email_authentication(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        purpose,
        "Alice@Example.com",
    )
    .await
    .unwrap()
}

async fn authentications_round_trip_for_both_purposes(db: Database) {
    let mut t = migrated(db).await;
    let added = add_for_alice(&mut t).await;
    assert_eq!(added.code.len(), EMAIL_CODE_DIGITS);
    assert!(added.code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        added.expires_at,
        t.clock.now_unix_ms() + EMAIL_CODE_LIFETIME_MS
    );
    let found = find_email_authentication(&mut t.conn, added.id)
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&added));

    let registration_id = Ulid::from_parts(1, 1);
    let purpose = EmailAuthenticationPurpose::Registration { registration_id };
    let first = add_email_authentication(&mut t.conn, &t.clock, &mut t.rng, purpose, "b@x.org")
        .await
        .unwrap();
    t.clock.advance(Duration::from_secs(1));
    let second = add_email_authentication(&mut t.conn, &t.clock, &mut t.rng, purpose, "b@x.org")
        .await
        .unwrap();
    assert_eq!(first.purpose, purpose);
    let latest = latest_for_registration(&mut t.conn, registration_id)
        .await
        .unwrap();
    assert_eq!(latest.map(|a| a.id), Some(second.id));
    assert!(
        latest_for_registration(&mut t.conn, Ulid::from_parts(1, 7))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        find_email_authentication(&mut t.conn, Ulid::from_parts(1, 7))
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_right_code_completes_once(db: Database) {
    let mut t = migrated(db).await;
    let added = add_for_alice(&mut t).await;
    // Spaces and a hyphen between the digits are ignored.
    let typed = format!(" {}-{} ", &added.code[..3], &added.code[3..]);
    let CodeCheck::Accepted(done) = check_email_code(&mut t.conn, &t.clock, added.id, &typed)
        .await
        .unwrap()
    else {
        panic!("the right code was not accepted");
    };
    assert_eq!(done.completed_at, Some(t.clock.now_unix_ms()));
    assert_eq!(done.attempts, 1);
    assert_eq!(
        check_email_code(&mut t.conn, &t.clock, added.id, &added.code)
            .await
            .unwrap(),
        CodeCheck::AlreadyUsed
    );
    assert_eq!(
        check_email_code(&mut t.conn, &t.clock, Ulid::from_parts(1, 7), &added.code)
            .await
            .unwrap(),
        CodeCheck::NotFound
    );
}

/// A code that differs from `code` in its last digit.
fn wrong(code: &str) -> String {
    let last = code.as_bytes()[code.len() - 1];
    let other = if last == b'9' {
        '0'
    } else {
        char::from(last + 1)
    };
    format!("{}{other}", &code[..code.len() - 1])
}

async fn wrong_codes_are_counted_up_to_the_limit(db: Database) {
    let mut t = migrated(db).await;
    let added = add_for_alice(&mut t).await;
    for left in (0..EMAIL_CODE_MAX_ATTEMPTS).rev() {
        assert_eq!(
            check_email_code(&mut t.conn, &t.clock, added.id, &wrong(&added.code))
                .await
                .unwrap(),
            CodeCheck::Wrong {
                attempts_left: left
            }
        );
    }
    // Every attempt is used: even the right code is no longer compared.
    assert_eq!(
        check_email_code(&mut t.conn, &t.clock, added.id, &added.code)
            .await
            .unwrap(),
        CodeCheck::TooManyAttempts
    );
    // Nor is a code of another length or with letters ever accepted.
    let other = add_for_alice_again(&mut t).await;
    for typed in ["", "12345", "1234567", "abcdef"] {
        assert!(matches!(
            check_email_code(&mut t.conn, &t.clock, other.id, typed)
                .await
                .unwrap(),
            CodeCheck::Wrong { .. }
        ));
    }
}

/// A second authentication (alice exists already).
async fn add_for_alice_again(t: &mut TestDb) -> EmailAuthentication {
    let purpose = EmailAuthenticationPurpose::Registration {
        registration_id: Ulid::from_parts(1, 3),
    };
    add_email_authentication(&mut t.conn, &t.clock, &mut t.rng, purpose, "c@x.org")
        .await
        .unwrap()
}

async fn an_expired_code_is_refused(db: Database) {
    let mut t = migrated(db).await;
    let added = add_for_alice(&mut t).await;
    t.clock
        .advance(Duration::from_millis(EMAIL_CODE_LIFETIME_MS as u64 - 1));
    let fresh = add_for_alice_again(&mut t).await;
    t.clock.advance(Duration::from_millis(1));
    assert_eq!(
        check_email_code(&mut t.conn, &t.clock, added.id, &added.code)
            .await
            .unwrap(),
        CodeCheck::Expired
    );
    assert!(matches!(
        check_email_code(&mut t.conn, &t.clock, fresh.id, &fresh.code)
            .await
            .unwrap(),
        CodeCheck::Accepted(_)
    ));
}

async fn of_two_racing_right_codes_one_is_accepted(db: Database) {
    let mut t = migrated(db).await;
    let added = add_for_alice(&mut t).await;
    let mut first = t.db.pool().begin().await.unwrap();
    assert!(matches!(
        check_email_code(&mut first, &t.clock, added.id, &added.code)
            .await
            .unwrap(),
        CodeCheck::Accepted(_)
    ));
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let (id, code) = (added.id, added.code.clone());
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let check = check_email_code(&mut tx, &clock, id, &code).await.unwrap();
        tx.commit().await.unwrap();
        check
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), CodeCheck::AlreadyUsed);
}

test_on_both_backends!(
    authentications_round_trip_for_both_purposes,
    the_right_code_completes_once,
    wrong_codes_are_counted_up_to_the_limit,
    an_expired_code_is_refused,
    of_two_racing_right_codes_one_is_accepted,
);
