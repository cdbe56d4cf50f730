//! The import on both backends (Synapse's database on the same engine as MAS's): every
//! mapping rule, all-or-nothing, dry run, refusal of a second run, old passwords and tokens
//! working afterwards.

use std::collections::HashMap;

use sqlx::Row as _;

use super::progress::Silent;
use super::testing::{self, PROVIDER_ID, SynapseFixture};
use super::*;
use crate::clock::MockClock;
use crate::crypto::tokens::sha256_hex;
use crate::rng::RngSource;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{self, Database};

async fn run_import(db: &Database, uri: &str, dry_run: bool) -> Result<Summary, Syn2masError> {
    let providers: HashMap<String, String> =
        [("oidc-cloudron".to_owned(), PROVIDER_ID.to_owned())].into();
    let clock = MockClock::default();
    let mut rng = RngSource::seeded(7).fork();
    let mut reader = assert_send(SynapseReader::open(uri)).await.unwrap();
    let target = Target {
        db,
        clock: &clock,
        rng: &mut rng,
        server_name: "example.com",
        providers: &providers,
        dry_run,
    };
    let outcome = assert_send(import::import(&mut reader, target, &mut Silent)).await;
    reader.close().await.unwrap();
    outcome
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

async fn count(db: &Database, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn assert_empty(db: &Database) {
    for table in [
        "users",
        "user_passwords",
        "user_emails",
        "upstream_oauth_links",
        "compat_sessions",
        "compat_access_tokens",
        "compat_refresh_tokens",
    ] {
        assert_eq!(count(db, table).await, 0, "{table}");
    }
}

async fn import_maps_users_emails_links_devices_and_tokens(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    let summary = run_import(&db, &synapse.uri, false).await.unwrap();
    synapse.drop_database().await;

    assert_eq!(
        (
            summary.users,
            summary.passwords,
            summary.emails,
            summary.upstream_links
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(
        (
            summary.compat_sessions,
            summary.access_tokens,
            summary.refresh_tokens
        ),
        (1, 2, 1)
    );
    let skipped = |reason: &str| summary.skipped.get(reason).copied().unwrap_or(0);
    assert_eq!(skipped("application service users"), 1);
    assert_eq!(skipped("non-email 3PIDs (phone numbers)"), 2);
    assert_eq!(skipped("3PIDs of users not imported"), 1);
    assert_eq!(skipped("devices of deactivated users and guests"), 2);
    assert_eq!(skipped("puppet tokens (admins acting as a user)"), 1);
    assert_eq!(skipped("device-less tokens"), 1);
    assert_eq!(skipped("tokens of hidden or missing devices"), 1);
    assert_eq!(
        skipped("tokens of users without sessions (deactivated, guests, not imported)"),
        1
    );
    assert_eq!(skipped("refresh pairs superseded by a used successor"), 1);

    let users = sqlx::query(
        "SELECT user_id, username, created_at, locked_at, deactivated_at, \
         CAST(can_request_admin AS INTEGER) AS admin, CAST(is_guest AS INTEGER) AS guest \
         FROM users ORDER BY username",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let names: Vec<String> = users.iter().map(|r| r.get("username")).collect();
    assert_eq!(names, ["alice", "bob", "carol", "guest1"]);
    let alice = &users[0];
    let alice_id: String = alice.get("user_id");
    assert_eq!(alice.get::<i64, _>("created_at"), 1_700_000_000_000);
    assert_eq!(
        ulid::Ulid::from_string(&alice_id).unwrap().timestamp_ms(),
        1_700_000_000_000
    );
    assert_eq!(alice.get::<i64, _>("admin"), 1);
    assert_eq!(
        users[1].get::<Option<i64>, _>("locked_at"),
        Some(1_700_000_001_000)
    );
    assert_eq!(
        users[2].get::<Option<i64>, _>("deactivated_at"),
        Some(1_700_000_002_000)
    );
    assert_eq!(users[3].get::<i64, _>("guest"), 1);

    let (hash, version): (String, i64) =
        sqlx::query_as("SELECT hashed_password, version FROM user_passwords WHERE user_id = $1")
            .bind(&alice_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((hash.as_str(), version), (testing::HASH, 1));

    let (email, normalized, confirmed): (String, String, Option<i64>) =
        sqlx::query_as("SELECT email, email_normalized, confirmed_at FROM user_emails")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(
        (email.as_str(), normalized.as_str(), confirmed),
        (
            "Alice@Example.com",
            "alice@example.com",
            Some(1_700_000_000_500)
        )
    );

    let (provider, subject, user): (String, String, String) = sqlx::query_as(
        "SELECT upstream_oauth_provider_id, subject, user_id FROM upstream_oauth_links",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        (provider.as_str(), subject.as_str()),
        (PROVIDER_ID, "sub-alice")
    );
    assert_eq!(user, alice_id);

    let session = sqlx::query(
        "SELECT compat_session_id, user_id, device_id, CAST(is_synapse_admin AS INTEGER) AS a, \
         created_at, user_agent, last_active_at, last_active_ip, human_name FROM compat_sessions",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(session.get::<String, _>("device_id"), "DEV1");
    assert_eq!(session.get::<i64, _>("a"), 1);
    assert_eq!(session.get::<i64, _>("created_at"), 1_700_000_100_000);
    assert_eq!(
        session.get::<Option<String>, _>("human_name").as_deref(),
        Some("Phone")
    );
    assert_eq!(
        session
            .get::<Option<String>, _>("last_active_ip")
            .as_deref(),
        Some("192.0.2.7")
    );
    assert_eq!(
        session.get::<Option<String>, _>("user_agent").as_deref(),
        Some("Element/1.0")
    );
    assert_eq!(
        session.get::<Option<i64>, _>("last_active_at"),
        Some(1_700_000_900_000)
    );

    let tokens: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT access_token_sha256, expires_at FROM compat_access_tokens ORDER BY created_at",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        tokens,
        [
            (sha256_hex("syt_YWxpY2U_plain_token"), None),
            (sha256_hex("syt_new_pair"), Some(1_700_000_300_000)),
        ]
    );
    let refresh: String =
        sqlx::query_scalar("SELECT refresh_token_sha256 FROM compat_refresh_tokens")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(refresh, sha256_hex("syr_refresh_new"));
}

async fn dry_run_reports_the_same_and_leaves_mas_empty(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    let summary = run_import(&db, &synapse.uri, true).await.unwrap();
    synapse.drop_database().await;
    assert!(summary.dry_run);
    assert_eq!((summary.users, summary.access_tokens), (4, 2));
    assert_empty(&db).await;
}

async fn failure_half_way_leaves_mas_empty(db: Database) {
    storage::migrate(&db).await.unwrap();
    // Users and emails are written before the external ids, where this provider fails.
    let rows = format!(
        "{}\nINSERT INTO user_external_ids VALUES ('oidc-gone', 'x', '@bob:example.com');",
        testing::population()
    );
    let synapse = SynapseFixture::new(&db, &rows).await;
    let outcome = run_import(&db, &synapse.uri, false).await;
    synapse.drop_database().await;
    assert!(matches!(outcome, Err(Syn2masError::UnknownProvider(p)) if p == "oidc-gone"));
    assert_empty(&db).await;
}

async fn a_second_migrate_is_refused(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    run_import(&db, &synapse.uri, false).await.unwrap();
    let second = run_import(&db, &synapse.uri, false).await;
    synapse.drop_database().await;
    assert!(matches!(second, Err(Syn2masError::NotEmpty(tables)) if tables.contains(&"users")));
    assert_eq!(count(&db, "users").await, 4);
}

async fn the_synapse_database_is_not_written(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    let mut reader = SynapseReader::open(&synapse.uri).await.unwrap();
    let write = sqlx::query("DELETE FROM users");
    let outcome = write.execute(reader_conn(&mut reader)).await;
    assert!(outcome.is_err(), "a write went through");
    drop(reader);
    synapse.drop_database().await;
}

fn reader_conn(reader: &mut SynapseReader) -> &mut sqlx::AnyConnection {
    reader.connection_for_tests()
}

async fn stats_count_guests_phones_and_providers(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    let mut reader = SynapseReader::open(&synapse.uri).await.unwrap();
    let stats = reader.stats().await.unwrap();
    reader.close().await.unwrap();
    synapse.drop_database().await;
    assert_eq!(
        stats,
        SourceStats {
            users: 5,
            guests: 1,
            non_email_threepids: 2,
            users_with_only_phone: 1,
            external_providers: vec![("oidc-cloudron".to_owned(), 1)],
        }
    );
}

async fn imported_password_verifies_and_upgrades(db: Database) {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    run_import(&db, &synapse.uri, false).await.unwrap();
    synapse.drop_database().await;
    let hash: String = sqlx::query_scalar("SELECT hashed_password FROM user_passwords LIMIT 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let manager = testing::mas_config().passwords.build_manager().unwrap();
    let mut rng = RngSource::seeded(1).fork();
    let upgraded = manager
        .verify_and_upgrade(&mut rng, 1, &hash, testing::PASSWORD)
        .await
        .unwrap();
    assert_eq!(upgraded.map(|(version, _)| version), Some(2));
    let wrong = manager
        .verify_and_upgrade(&mut rng, 1, &hash, "Passwörd fine")
        .await;
    assert!(wrong.is_err() || wrong.unwrap().is_none());
}

async fn imported_synapse_token_introspects_active(db: Database) {
    let app = crate::app::testing::oauth::ApiApp::new(db.clone()).await;
    let synapse = SynapseFixture::new(&db, &testing::population()).await;
    run_import(&db, &synapse.uri, false).await.unwrap();
    synapse.drop_database().await;
    let answer = app.introspect("syt_YWxpY2U_plain_token").await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["device_id"], "DEV1");
    assert_eq!(answer["username"], "alice");
    let superseded = app.introspect("syt_old_pair").await;
    assert_eq!(superseded["active"], false);
}

test_on_both_backends!(
    import_maps_users_emails_links_devices_and_tokens,
    dry_run_reports_the_same_and_leaves_mas_empty,
    failure_half_way_leaves_mas_empty,
    a_second_migrate_is_refused,
    the_synapse_database_is_not_written,
    stats_count_guests_phones_and_providers,
    imported_password_verifies_and_upgrades,
    imported_synapse_token_introspects_active,
);

/// Every check, one configuration at a time.
#[test]
fn every_check_reports_its_problem() {
    use checks::run;
    let stats = SourceStats::default();
    let clean = run(
        &testing::mas_config(),
        &testing::synapse_config(),
        &stats,
        &[],
    );
    assert_eq!(clean, []);

    let synapse_with = |yaml: &str| {
        let mut text = "server_name: example.com\n".to_owned();
        if !yaml.starts_with("password_config") {
            text.push_str(&format!(
                "password_config: {{pepper: '{}'}}\n",
                testing::PEPPER
            ));
        }
        text.push_str(yaml);
        SynapseConfig::parse(&text).unwrap()
    };
    let cases: [(&str, &str); 12] = [
        (
            "allow_guest_access: true",
            "error: Synapse has allow_guest_access",
        ),
        (
            "enable_3pid_changes: true",
            "error: Synapse has enable_3pid_changes",
        ),
        (
            "login_via_existing_session: {enabled: true}",
            "error: Synapse has login_via_existing_session",
        ),
        (
            "password_providers: [{module: ldap_auth_provider.LdapAuthProvider}]",
            "error: Synapse has password_providers",
        ),
        (
            "modules: [{module: synapse_rest_auth.RestAuthProvider}]",
            "error: Synapse has the authentication module `synapse_rest_auth.RestAuthProvider`",
        ),
        (
            "cas_config: {enabled: true, server_url: 'https://cas'}",
            "error: Synapse has CAS login",
        ),
        (
            "saml2_config: {sp_config: {}}",
            "error: Synapse has SAML login",
        ),
        (
            "jwt_config: {enabled: true}",
            "error: Synapse has JWT login",
        ),
        (
            "enable_registration: true",
            "warning: Synapse has enable_registration on",
        ),
        (
            "user_consent: {version: '1.0'}",
            "warning: Synapse has user_consent",
        ),
        (
            "enable_registration_captcha: true",
            "warning: Synapse asks for a captcha",
        ),
        (
            "password_config: {pepper: other}",
            "error: the secret of MAS password scheme version 1 differs",
        ),
    ];
    for (yaml, expected) in cases {
        let problems = run(&testing::mas_config(), &synapse_with(yaml), &stats, &[]);
        assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
        assert!(
            problems[0].to_string().starts_with(expected),
            "{yaml}: {}",
            problems[0]
        );
    }
    // Modules that do not authenticate are fine; jwt_config is off unless enabled.
    let harmless = synapse_with("modules: [{module: my_spam_checker.Checker}]\njwt_config: {}");
    assert_eq!(run(&testing::mas_config(), &harmless, &stats, &[]), []);

    let mut mas = testing::mas_config();
    mas.matrix.homeserver = "other.example".to_owned();
    mas.passwords.schemes.retain(|s| s.version != 1);
    let problems = run(&mas, &testing::synapse_config(), &stats, &["users"]);
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text[0].starts_with("error: MAS has no password scheme version 1"),
        "{text:?}"
    );
    assert!(text[1].starts_with("error: MAS matrix.homeserver is `other.example`"));
    assert!(text[2].starts_with("error: the MAS database is not empty (users have rows)"));

    let stats = SourceStats {
        guests: 2,
        non_email_threepids: 3,
        users_with_only_phone: 1,
        external_providers: vec![
            ("oauth-delegated".to_owned(), 1),
            ("oidc-cloudron".to_owned(), 4),
            ("oidc-gone".to_owned(), 2),
        ],
        ..SourceStats::default()
    };
    let problems = run(
        &testing::mas_config(),
        &testing::synapse_config(),
        &stats,
        &[],
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 4, "{text:?}");
    assert!(text[0].contains("1 `oauth-delegated` external ids from an earlier MAS"));
    assert!(text[1].starts_with(
        "error: 2 external ids use Synapse's SSO provider `oidc-gone` (it is not in Synapse's \
         config either), which no MAS upstream provider maps: set `synapse_idp_id: oidc-gone`"
    ));
    assert!(text[2].starts_with("warning: 2 guest users"));
    assert!(text[3].starts_with("warning: 3 phone numbers are not imported"));
}
