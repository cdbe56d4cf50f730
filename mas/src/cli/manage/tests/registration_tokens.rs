//! `issue-user-registration-token`, `list-user-registration-tokens` and
//! `revoke-user-registration-token`: what they store and print, and one line per bad flag.

use std::time::Duration;

use super::*;
use crate::clock::Clock as _;
use crate::storage::registrations;

async fn stored(h: &Harness, token: &str) -> crate::model::RegistrationToken {
    registrations::find_registration_token_by_token(&mut *h.conn().await, token)
        .await
        .unwrap()
        .unwrap()
}

async fn tokens_are_issued_listed_and_revoked(db: Database) {
    let h = harness(db).await;
    assert_eq!(
        h.ok(&["list-user-registration-tokens"]).await,
        ["No registration tokens."]
    );
    let lines = h
        .ok(&[
            "issue-user-registration-token",
            "--token",
            "welcome-2026",
            "--usage-limit",
            "3",
            "--expires-in",
            "3600",
        ])
        .await;
    assert_eq!(
        lines,
        [
            "Issued a registration token (3 uses, expires 2024-01-01 01:00 UTC):",
            "welcome-2026"
        ]
    );
    let token = stored(&h, "welcome-2026").await;
    assert_eq!(token.usage_limit, Some(3));
    assert_eq!(token.expires_at, Some(h.clock.now_unix_ms() + 3_600_000));

    h.clock.advance(Duration::from_secs(1));
    let random = h.ok(&["issue-user-registration-token"]).await;
    assert_eq!(
        random[0],
        "Issued a registration token (unlimited uses, never expires):"
    );
    assert_eq!(random[1].len(), 16);
    assert!(random[1].chars().all(|c| c.is_ascii_alphanumeric()));
    h.clock.advance(Duration::from_secs(1));
    let once = h
        .ok(&[
            "issue-user-registration-token",
            "--token",
            "once",
            "--usage-limit",
            "1",
        ])
        .await;
    assert_eq!(
        once[0],
        "Issued a registration token (1 use, never expires):"
    );

    let mut conn = h.conn().await;
    let clock = h.manage.ctx.clock.as_ref();
    let once = stored(&h, "once").await;
    assert!(
        registrations::use_registration_token(&mut conn, clock, once.id)
            .await
            .unwrap()
    );
    drop(conn);
    assert_eq!(
        h.ok(&["revoke-user-registration-token", &random[1]]).await,
        [format!("Revoked the registration token {}.", random[1])]
    );
    assert_eq!(
        h.ok(&["list-user-registration-tokens"]).await,
        [
            "TOKEN             USES         EXPIRES               STATE".to_owned(),
            "welcome-2026      0/3          2024-01-01 01:00 UTC  active".to_owned(),
            format!("{}  0/unlimited  never                 revoked", random[1]),
            "once              1/1          never                 used up".to_owned(),
        ]
    );
    h.clock.advance(Duration::from_secs(3600));
    let listed = h.ok(&["list-user-registration-tokens"]).await;
    assert!(listed[1].ends_with("expired"), "{listed:?}");
}

async fn bad_input_is_one_line_naming_the_flag(db: Database) {
    let h = harness(db).await;
    let issue = "issue-user-registration-token";
    assert_eq!(
        h.err(&[issue, "--usage-limit", "0"]).await,
        "--usage-limit must be at least 1"
    );
    assert_eq!(
        h.err(&[issue, "--expires-in", "0"]).await,
        "--expires-in must be at least 1 second"
    );
    assert_eq!(
        h.err(&[issue, "--expires-in", "18446744073709551615"])
            .await,
        "--expires-in is too large"
    );
    for bad in ["", "with space", "ü", &"x".repeat(65)] {
        assert_eq!(
            h.err(&[issue, "--token", bad]).await,
            "--token must be 1 to 64 of A-Z a-z 0-9 . _ ~ -"
        );
    }
    h.ok(&[issue, "--token", "taken"]).await;
    assert_eq!(
        h.err(&[issue, "--token", "taken"]).await,
        "--token: the registration token \"taken\" exists already"
    );
    let revoke = "revoke-user-registration-token";
    assert_eq!(
        h.err(&[revoke, "nope"]).await,
        "no registration token \"nope\""
    );
    h.ok(&[revoke, "taken"]).await;
    assert_eq!(
        h.err(&[revoke, "taken"]).await,
        "the registration token \"taken\" is revoked already"
    );
    let mut conn = h.conn().await;
    let tokens = registrations::list_registration_tokens(&mut conn)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
}

test_on_both_backends!(
    tokens_are_issued_listed_and_revoked,
    bad_input_is_one_line_naming_the_flag,
);
