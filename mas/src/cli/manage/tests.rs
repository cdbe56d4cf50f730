//! Tests of the `manage` verbs against a real database (both backends) and the recording
//! mock homeserver: what each writes, which homeserver calls follow, and the lines printed.

use std::sync::Arc;

use clap::Parser as _;

use super::*;
use crate::cli::{Command as CliCommand, Options};
use crate::clock::MockClock;
use crate::config::HashingAlgorithm;
use crate::crypto::passwords::Hasher;
use crate::homeserver::{HomeserverConnection as _, MockCall, MockFailure, MockHomeserver};
use crate::model::{JobStatus, NewSession};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{
    browser_sessions, clients, emails, jobs as store, oauth2_sessions, passwords,
};

const STRONG: &str = "correct horse battery staple 42";

struct Harness {
    manage: Manage,
    hs: Arc<MockHomeserver>,
    clock: MockClock,
}

async fn harness(db: Database) -> Harness {
    storage::migrate(&db).await.unwrap();
    let hs = Arc::new(MockHomeserver::new("example.com"));
    let clock = MockClock::default();
    let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
    let manage = Manage {
        ctx: JobContext {
            db,
            clock: Arc::new(clock.clone()),
            rng: RngSource::seeded(3),
            homeserver: hs.clone(),
            jobs: JobWaker::new(),
            mail: None,
        },
        passwords: Some(Arc::new(PasswordManager::new([(1, argon2)], 3).unwrap())),
        server_name: "example.com".to_owned(),
        interactive: false,
    };
    Harness { manage, hs, clock }
}

impl Harness {
    /// Runs `mas-cli manage ARGS…`: the printed lines, or the error line.
    async fn run(&self, args: &[&str]) -> Result<Vec<String>, String> {
        let argv = ["mas-cli", "manage"].iter().chain(args);
        let Options { command, .. } = Options::try_parse_from(argv).unwrap();
        let CliCommand::Manage { command } = command else {
            unreachable!()
        };
        self.manage.run(command).await.map_err(|e| format!("{e:#}"))
    }

    async fn ok(&self, args: &[&str]) -> Vec<String> {
        self.run(args).await.unwrap()
    }

    async fn err(&self, args: &[&str]) -> String {
        self.run(args).await.unwrap_err()
    }

    async fn conn(&self) -> sqlx::pool::PoolConnection<sqlx::Any> {
        self.manage.ctx.db.pool().acquire().await.unwrap()
    }

    async fn user(&self, name: &str) -> Option<User> {
        users::find_user_by_username(&mut *self.conn().await, name)
            .await
            .unwrap()
    }

    async fn available_jobs(&self) -> Vec<crate::model::Job> {
        store::list_jobs(&mut *self.conn().await, JobStatus::Available, 100)
            .await
            .unwrap()
    }

    /// Alice with a device session and a browser session, known to the homeserver with
    /// that device.
    async fn alice_with_sessions(&self) -> User {
        self.ok(&[
            "register-user",
            "alice",
            "-p",
            STRONG,
            "-e",
            "alice@example.com",
        ])
        .await;
        let alice = self.user("alice").await.unwrap();
        let mut conn = self.conn().await;
        let clock = self.manage.ctx.clock.as_ref();
        let mut rng = self.manage.ctx.rng.fork();
        let metadata = crate::storage::testing::fixtures::native_client_metadata();
        let client = clients::add_client(&mut conn, clock, &mut rng, None, metadata, None)
            .await
            .unwrap();
        let new = NewSession {
            client_id: client.id,
            user_id: Some(alice.id),
            user_session_id: None,
            scope: "openid urn:matrix:client:api:* urn:matrix:client:device:ALICEPHONE"
                .parse()
                .unwrap(),
            user_agent: None,
            human_name: None,
        };
        oauth2_sessions::create_oauth2_session(&mut conn, clock, &mut rng, new)
            .await
            .unwrap();
        browser_sessions::start_browser_session(&mut conn, clock, &mut rng, &alice, None, None)
            .await
            .unwrap();
        self.hs
            .upsert_device("alice", "ALICEPHONE", None)
            .await
            .unwrap();
        self.hs.take_calls();
        alice
    }
}

async fn register_user_creates_the_user_and_provisions_it_at_once(db: Database) {
    let h = harness(db).await;
    let lines = h
        .ok(&[
            "register-user",
            "alice",
            "--password",
            STRONG,
            "--admin",
            "-e",
            "alice@example.com",
            "--email",
            "a@example.org",
            "--display-name",
            "Alice A.",
        ])
        .await;
    assert_eq!(
        lines,
        [
            "Created user alice (@alice:example.com), admin, with a password, display name \
             \"Alice A.\", emails alice@example.com, a@example.org.",
            "Provisioned @alice:example.com in the homeserver.",
        ]
    );
    let alice = h.user("alice").await.unwrap();
    assert!(alice.can_request_admin && alice.is_valid());
    let mut conn = h.conn().await;
    let password = passwords::active_password(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    let manager = h.manage.passwords.as_deref().unwrap();
    manager
        .verify(password.version, &password.hashed_password, STRONG)
        .await
        .unwrap();
    let stored = emails::list_emails(&mut conn, alice.id).await.unwrap();
    assert!(stored.iter().all(|email| email.confirmed_at.is_some()));

    let in_hs = h.hs.user("alice").unwrap();
    assert_eq!(in_hs.display_name.as_deref(), Some("Alice A."));
    assert_eq!(in_hs.emails.len(), 2);
    assert!(!in_hs.locked);
    assert!(h.available_jobs().await.is_empty(), "nothing left queued");
}

async fn register_user_refuses_bad_input_before_changing_anything(db: Database) {
    let h = harness(db).await;
    h.ok(&["register-user", "alice", "-p", STRONG]).await;
    h.hs.take_calls();
    let long = "a".repeat(250);
    let cases: [(&[&str], &str); 9] = [
        (
            &["register-user", "alice", "-p", STRONG],
            "the username \"alice\" is already taken",
        ),
        (
            &["register-user", "Alice", "-p", STRONG],
            "invalid username \"Alice\"",
        ),
        (
            &["register-user", "12345", "-p", STRONG],
            "cannot be only digits",
        ),
        (&["register-user", &long, "-p", STRONG], "at most 255"),
        (
            &["register-user", "bob", "-p", "password"],
            "the password is too weak",
        ),
        (
            &[
                "register-user",
                "bob",
                "-p",
                STRONG,
                "--password-file",
                "/x",
            ],
            "not both",
        ),
        (
            &["register-user", "bob", "-p", STRONG, "-e", "nope"],
            "invalid email address",
        ),
        (
            &["register-user", "bob"],
            "no password given and no terminal to confirm",
        ),
        (
            &["register-user", "bob", "--password-file", "/nonexistent"],
            "cannot read",
        ),
    ];
    for (args, expected) in cases {
        let error = h.err(args).await;
        assert!(error.contains(expected), "{args:?}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
    assert!(h.user("bob").await.is_none());
    assert!(h.available_jobs().await.is_empty());
    // Only the homeserver availability of valid, new names was ever asked.
    assert!(
        h.hs.calls()
            .iter()
            .all(|call| matches!(call, MockCall::IsLocalpartAvailable(name) if name == "bob")),
        "{:?}",
        h.hs.calls()
    );
}

async fn register_user_refuses_a_name_the_homeserver_does_not_offer(db: Database) {
    let h = harness(db).await;
    h.hs.reserve_localpart("bridge");
    let error = h.err(&["register-user", "bridge", "-p", STRONG]).await;
    assert_eq!(
        error,
        "the username \"bridge\" is not available on the homeserver"
    );
    assert!(h.user("bridge").await.is_none());
}

async fn register_user_with_yes_and_no_password_or_a_weak_one_when_told(db: Database) {
    let h = harness(db).await;
    let lines = h.ok(&["register-user", "carol", "--yes"]).await;
    assert!(lines[0].contains("without a password"), "{lines:?}");
    let lines = h
        .ok(&[
            "register-user",
            "dave",
            "-p",
            "dave",
            "--ignore-password-complexity",
        ])
        .await;
    assert!(lines[0].starts_with("Created user dave"), "{lines:?}");
}

async fn register_user_leaves_the_job_queued_when_the_homeserver_is_down(db: Database) {
    let h = harness(db).await;
    h.hs.set_failure(Some(MockFailure::Unreachable));
    let lines = h.ok(&["register-user", "alice", "-p", STRONG]).await;
    assert_eq!(
        lines[0],
        "Created user alice (@alice:example.com), with a password."
    );
    assert!(
        lines[1].starts_with(
            "The homeserver was not updated (provision_user: the homeserver is unreachable"
        ),
        "{lines:?}"
    );
    assert!(
        lines[1]
            .ends_with("the provision-user job stays queued and `mas-cli server` will retry it."),
        "{lines:?}"
    );
    let queued = h.available_jobs().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].queue_name, "provision-user");
    assert_eq!(queued[0].attempt, 1);
}

async fn set_password_replaces_the_active_password(db: Database) {
    let h = harness(db).await;
    h.ok(&["register-user", "alice", "-p", STRONG]).await;
    let new = "another long passphrase 1234";
    h.clock.advance(std::time::Duration::from_secs(1));
    let lines = h.ok(&["set-password", "alice", new]).await;
    assert_eq!(lines, ["Set the password of alice (@alice:example.com)."]);
    let alice = h.user("alice").await.unwrap();
    let password = passwords::active_password(&mut *h.conn().await, alice.id)
        .await
        .unwrap()
        .unwrap();
    let manager = h.manage.passwords.as_deref().unwrap();
    manager
        .verify(password.version, &password.hashed_password, new)
        .await
        .unwrap();

    assert_eq!(
        h.err(&["set-password", "bob", new]).await,
        "no user named \"bob\""
    );
    let weak = h.err(&["set-password", "alice", "abc"]).await;
    assert!(weak.contains("--ignore-complexity"), "{weak}");
    h.ok(&["set-password", "alice", "abc", "--ignore-complexity"])
        .await;
}

async fn lock_user_ends_sessions_and_deletes_devices(db: Database) {
    let h = harness(db).await;
    let alice = h.alice_with_sessions().await;
    let lines = h.ok(&["lock-user", "alice"]).await;
    assert_eq!(
        lines,
        [
            "Locked alice (@alice:example.com) and ended 2 sessions (1 OAuth, 1 browser).",
            "Deleted the devices of @alice:example.com and locked it in the homeserver.",
        ]
    );
    let in_hs = h.hs.user("alice").unwrap();
    assert!(in_hs.locked);
    assert!(in_hs.devices.is_empty());
    let mut conn = h.conn().await;
    assert!(
        oauth2_sessions::list_active_oauth2_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.user("alice").await.unwrap().locked_at.is_some());

    let lines = h.ok(&["unlock-user", "alice"]).await;
    assert_eq!(
        lines,
        [
            "Unlocked alice (@alice:example.com).",
            "Unlocked @alice:example.com in the homeserver.",
        ]
    );
    assert!(!h.hs.user("alice").unwrap().locked);
    assert!(h.user("alice").await.unwrap().is_valid());
    assert_eq!(
        h.err(&["lock-user", "nobody"]).await,
        "no user named \"nobody\""
    );
}

async fn lock_user_also_ends_compatibility_sessions(db: Database) {
    let h = harness(db).await;
    let alice = h.alice_with_sessions().await;
    h.ok(&[
        "issue-compatibility-token",
        "alice",
        "--device-id",
        "COMPATDEV01",
    ])
    .await;
    assert!(
        h.hs.user("alice")
            .unwrap()
            .devices
            .contains_key("COMPATDEV01")
    );
    let lines = h.ok(&["lock-user", "alice"]).await;
    assert_eq!(
        lines[0],
        "Locked alice (@alice:example.com) and ended 3 sessions (1 OAuth, 1 compatibility, 1 browser)."
    );
    assert!(
        h.hs.user("alice").unwrap().devices.is_empty(),
        "the compat device is gone too"
    );
    let mut conn = h.conn().await;
    assert!(
        crate::storage::compat::list_active_compat_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deactivation_deletes_the_user_in_the_homeserver_and_reactivation_undoes_it(db: Database) {
    let h = harness(db).await;
    let alice = h.alice_with_sessions().await;
    let lines = h.ok(&["lock-user", "alice", "--deactivate"]).await;
    assert_eq!(
        lines,
        [
            "Locked and deactivated alice (@alice:example.com) and ended 2 sessions \
             (1 OAuth, 1 browser).",
            "Deactivated @alice:example.com in the homeserver.",
        ]
    );
    assert_eq!(
        h.hs.calls(),
        [MockCall::DeleteUser("alice".to_owned(), false)]
    );
    assert!(h.hs.user("alice").unwrap().deactivated);
    assert!(
        emails::list_emails(&mut *h.conn().await, alice.id)
            .await
            .unwrap()
            .is_empty()
    );

    let lines = h.ok(&["unlock-user", "alice"]).await;
    assert!(
        lines[0].contains("stays deactivated (use --reactivate)"),
        "{lines:?}"
    );
    let lines = h.ok(&["unlock-user", "alice", "--reactivate"]).await;
    assert_eq!(
        lines,
        [
            "Unlocked and reactivated alice (@alice:example.com).",
            "Reactivated @alice:example.com in the homeserver.",
        ]
    );
    assert!(!h.hs.user("alice").unwrap().deactivated);
    assert!(h.user("alice").await.unwrap().is_valid());
}

async fn emails_are_added_verified_and_reach_the_homeserver(db: Database) {
    let h = harness(db).await;
    h.ok(&["register-user", "alice", "-p", STRONG]).await;
    let lines = h.ok(&["add-email", "alice", "alice@example.com"]).await;
    assert_eq!(
        lines,
        [
            "Added the email address alice@example.com to alice (@alice:example.com), verified.",
            "Updated the emails of @alice:example.com in the homeserver.",
        ]
    );
    assert_eq!(
        h.hs.user("alice").unwrap().emails,
        ["alice@example.com".to_owned()].into()
    );
    let error = h.err(&["add-email", "alice", "ALICE@example.com"]).await;
    assert_eq!(
        error,
        "alice already has the email address ALICE@example.com"
    );
    assert!(
        h.err(&["add-email", "alice", "not an email"])
            .await
            .contains("invalid email")
    );

    let lines = h.ok(&["verify-email", "alice", "Alice@Example.com"]).await;
    assert_eq!(
        lines,
        [
            "The email address alice@example.com of alice (@alice:example.com) was already \
          verified; nothing changed."
        ]
    );
    // An unverified address (as the web pages will add them) becomes verified.
    let alice = h.user("alice").await.unwrap();
    let mut rng = h.manage.ctx.rng.fork();
    let clock = h.manage.ctx.clock.as_ref();
    emails::add_email(
        &mut *h.conn().await,
        clock,
        &mut rng,
        alice.id,
        "new@example.com",
        false,
    )
    .await
    .unwrap();
    let lines = h.ok(&["verify-email", "alice", "new@example.com"]).await;
    assert_eq!(
        lines[0],
        "Verified the email address new@example.com of alice (@alice:example.com)."
    );
    assert_eq!(h.hs.user("alice").unwrap().emails.len(), 2);
    let error = h.err(&["verify-email", "alice", "other@example.com"]).await;
    assert_eq!(error, "alice has no email address other@example.com");
}

async fn kill_sessions_ends_everything_or_only_counts_on_a_dry_run(db: Database) {
    let h = harness(db).await;
    let alice = h.alice_with_sessions().await;
    let lines = h.ok(&["kill-sessions", "alice", "--dry-run"]).await;
    assert_eq!(
        lines,
        [
            "Would end 2 sessions of alice (@alice:example.com): 1 OAuth, 1 browser; nothing \
          changed (dry run)."
        ]
    );
    assert_eq!(h.hs.devices("alice").len(), 1);
    let mut conn = h.conn().await;
    assert_eq!(
        oauth2_sessions::list_active_oauth2_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .len(),
        1
    );

    let lines = h.ok(&["kill-sessions", "alice"]).await;
    assert_eq!(
        lines,
        [
            "Ended 2 sessions of alice (@alice:example.com): 1 OAuth, 1 browser.",
            "Deleted the devices of @alice:example.com in the homeserver.",
        ]
    );
    assert!(h.hs.devices("alice").is_empty());
    assert!(
        oauth2_sessions::list_active_oauth2_sessions(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.user("alice").await.unwrap().is_valid(), "not locked");

    // Homeserver down: the sessions end anyway and the sync stays queued.
    h.hs.set_failure(Some(MockFailure::ServerError));
    let lines = h.ok(&["kill-sessions", "alice"]).await;
    assert_eq!(
        lines[0],
        "Ended 0 sessions of alice (@alice:example.com): 0 OAuth, 0 browser."
    );
    assert!(
        lines[1].contains("the sync-devices job stays queued"),
        "{lines:?}"
    );
}

async fn promote_and_demote_admin_flip_the_admin_permission(db: Database) {
    let h = harness(db).await;
    h.ok(&["register-user", "bob", "-p", STRONG]).await;
    assert!(!h.user("bob").await.unwrap().can_request_admin);
    let lines = h.ok(&["promote-admin", "bob"]).await;
    assert_eq!(
        lines,
        [
            "bob (@bob:example.com) may now ask for Synapse admin rights (urn:synapse:admin:*) \
          when signing in."
        ]
    );
    assert!(h.user("bob").await.unwrap().can_request_admin);
    let again = h.ok(&["promote-admin", "bob"]).await;
    assert_eq!(
        again,
        ["bob (@bob:example.com) is already an admin; nothing changed."]
    );
    let lines = h.ok(&["demote-admin", "bob"]).await;
    assert!(lines[0].contains("may no longer ask"), "{lines:?}");
    assert!(!h.user("bob").await.unwrap().can_request_admin);
    assert_eq!(
        h.err(&["promote-admin", "nobody"]).await,
        "no user named \"nobody\""
    );
}

test_on_both_backends!(
    promote_and_demote_admin_flip_the_admin_permission,
    register_user_creates_the_user_and_provisions_it_at_once,
    register_user_refuses_bad_input_before_changing_anything,
    register_user_refuses_a_name_the_homeserver_does_not_offer,
    register_user_with_yes_and_no_password_or_a_weak_one_when_told,
    register_user_leaves_the_job_queued_when_the_homeserver_is_down,
    set_password_replaces_the_active_password,
    lock_user_ends_sessions_and_deletes_devices,
    lock_user_also_ends_compatibility_sessions,
    deactivation_deletes_the_user_in_the_homeserver_and_reactivation_undoes_it,
    emails_are_added_verified_and_reach_the_homeserver,
    kill_sessions_ends_everything_or_only_counts_on_a_dry_run,
);

#[test]
fn usernames_follow_the_registration_rules() {
    for good in ["alice", "a.b=c_d/e+f-g", "1alice", "x"] {
        validate_username(good, "example.com").unwrap();
    }
    for bad in ["", "Alice", "al ice", "alicé", "123", "al:ice", "@alice"] {
        assert!(validate_username(bad, "example.com").is_err(), "{bad:?}");
    }
    // `@` + 242 + `:` + 11 = 255 characters: the longest allowed.
    validate_username(&"a".repeat(242), "example.com").unwrap();
    assert!(validate_username(&"a".repeat(243), "example.com").is_err());
}

#[test]
fn emails_need_something_on_both_sides_of_an_at() {
    for good in ["a@b", "alice@example.com", "a+tag@sub.example.org"] {
        validate_email(good).unwrap();
    }
    for bad in ["", "alice", "@example.com", "alice@", "al ice@example.com"] {
        assert!(validate_email(bad).is_err(), "{bad:?}");
    }
}

const PROVIDER: &str = "01J00000000000000000PR0V1D";

async fn linked_user(h: &Harness, subject: &str) -> Option<Ulid> {
    crate::storage::upstream_links::find_upstream_link_by_subject(
        &mut *h.conn().await,
        PROVIDER,
        subject,
    )
    .await
    .unwrap()
    .and_then(|link| link.user_id)
}

async fn link_upstream_makes_a_subject_sign_in_as_an_existing_user(db: Database) {
    let h = harness(db).await;
    h.ok(&["register-user", "carol", "-p", STRONG]).await;
    h.ok(&["register-user", "dave", "-p", STRONG]).await;
    let carol = h.user("carol").await.unwrap();
    let dave = h.user("dave").await.unwrap();
    let link = [
        "link-upstream",
        "carol",
        "--provider",
        PROVIDER,
        "--subject",
        "sub-1",
    ];
    let lines = h.ok(&link).await;
    assert_eq!(
        lines,
        [format!(
            "\"sub-1\" at {PROVIDER} now signs in as carol (@carol:example.com)."
        )]
    );
    assert_eq!(linked_user(&h, "sub-1").await, Some(carol.id));
    assert!(h.ok(&link).await[0].contains("already linked"));

    let to_dave = [
        "link-upstream",
        "dave",
        "--provider",
        PROVIDER,
        "--subject",
        "sub-1",
    ];
    let error = h.err(&to_dave).await;
    assert!(
        error.contains("linked to carol") && error.contains("--replace"),
        "{error}"
    );
    assert_eq!(linked_user(&h, "sub-1").await, Some(carol.id));
    let mut replace = to_dave.to_vec();
    replace.push("--replace");
    h.ok(&replace).await;
    assert_eq!(linked_user(&h, "sub-1").await, Some(dave.id));

    assert_eq!(
        h.err(&[
            "link-upstream",
            "nobody",
            "--provider",
            PROVIDER,
            "--subject",
            "s"
        ])
        .await,
        "no user named \"nobody\""
    );
}

test_on_both_backends!(link_upstream_makes_a_subject_sign_in_as_an_existing_user);
