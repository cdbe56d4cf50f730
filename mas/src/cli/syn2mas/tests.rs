//! `syn2mas check|migrate` as the command line runs them: exit statuses, the report, the
//! summary, and no secret in any of it.

use super::*;
use crate::storage::testing::test_on_both_backends;
use crate::syn2mas::progress::Silent;
use crate::syn2mas::testing::{self, SynapseFixture};

struct Setup {
    db: Database,
    synapse: SynapseFixture,
    source: Source,
    _dir: tempfile::TempDir,
}

async fn setup(db: Database, rows: &str, synapse_yaml: &str) -> Setup {
    storage::migrate(&db).await.unwrap();
    let synapse = SynapseFixture::new(&db, rows).await;
    let dir = tempfile::tempdir().unwrap();
    let file = Utf8PathBuf::from_path_buf(dir.path().join("homeserver.yaml")).unwrap();
    std::fs::write(&file, synapse_yaml).unwrap();
    let source = Source {
        synapse_config: vec![file],
        synapse_database_uri: Some(synapse.uri.clone()),
    };
    Setup {
        db,
        synapse,
        source,
        _dir: dir,
    }
}

fn synapse_yaml() -> String {
    format!(
        "server_name: example.com\npassword_config: {{pepper: '{}'}}\n\
         oidc_providers: [{{idp_id: cloudron}}]\n",
        testing::PEPPER
    )
}

fn assert_no_secret(output: &str) {
    for secret in [testing::HASH, testing::PEPPER, "syt_", "syr_", "$2b$"] {
        assert!(!output.contains(secret), "{secret} in {output}");
    }
}

async fn check_exits_11_on_warnings_and_0_when_clean(db: Database) {
    let mas = testing::mas_config();
    let s = setup(db, &testing::population(), &synapse_yaml()).await;
    let (code, output) = check(&mas, &s.db, &s.source).await.unwrap();
    assert_eq!(code, EXIT_WARNINGS, "{output}");
    assert!(output.contains("warning: 1 guest users"), "{output}");
    assert!(
        output.contains("users with only a phone number"),
        "{output}"
    );
    assert!(!output.contains("error:"), "{output}");
    assert_no_secret(&output);
    s.synapse.drop_database().await;

    let clean = "INSERT INTO users (name, creation_ts) VALUES ('@dan:example.com', 1);";
    let s = setup(s.db, clean, &synapse_yaml()).await;
    let (code, output) = check(&mas, &s.db, &s.source).await.unwrap();
    assert_eq!((code, output.as_str()), (0, "syn2mas: no problem found\n"));
    s.synapse.drop_database().await;
}

async fn migrate_refuses_on_errors_with_exit_10(db: Database) {
    let mut mas = testing::mas_config();
    mas.matrix.homeserver = "other.example".to_owned();
    let s = setup(db, &testing::population(), &synapse_yaml()).await;
    let (code, output) = migrate(&mas, &s.db, &s.source, false, &mut Silent)
        .await
        .unwrap();
    s.synapse.drop_database().await;
    assert_eq!(code, EXIT_ERRORS, "{output}");
    assert!(
        output.contains("error: MAS matrix.homeserver is `other.example`"),
        "{output}"
    );
    assert!(output.ends_with("syn2mas: nothing was imported (fix the errors above)\n"));
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(s.db.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
}

async fn migrate_prints_the_summary_and_a_second_run_exits_10(db: Database) {
    let mas = testing::mas_config();
    let s = setup(db, &testing::population(), &synapse_yaml()).await;
    let (code, dry) = migrate(&mas, &s.db, &s.source, true, &mut Silent)
        .await
        .unwrap();
    assert_eq!(code, 0, "{dry}");
    assert!(dry.contains("dry run"), "{dry}");
    assert!(dry.contains("  users: 4\n  passwords: 2\n"), "{dry}");
    assert!(dry.contains("    device-less tokens: 1\n"), "{dry}");
    assert_no_secret(&dry);

    let (code, output) = migrate(&mas, &s.db, &s.source, false, &mut Silent)
        .await
        .unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("syn2mas: imported\n"), "{output}");
    assert_eq!(
        output.replace("imported\n", ""),
        dry.replace(
            "dry run: this is what would be imported; nothing was kept\n",
            ""
        )
    );
    assert_no_secret(&output);

    let (code, again) = migrate(&mas, &s.db, &s.source, false, &mut Silent)
        .await
        .unwrap();
    s.synapse.drop_database().await;
    assert_eq!(code, EXIT_ERRORS, "{again}");
    assert!(again.contains("error: the MAS database is not empty (users, compat_sessions, upstream_oauth_links have rows)"), "{again}");
}

test_on_both_backends!(
    check_exits_11_on_warnings_and_0_when_clean,
    migrate_refuses_on_errors_with_exit_10,
    migrate_prints_the_summary_and_a_second_run_exits_10,
);

#[test]
fn the_command_line_takes_the_documented_flags() {
    use clap::Parser as _;
    let options = crate::cli::Options::try_parse_from([
        "mas-cli",
        "-c",
        "mas.yaml",
        "syn2mas",
        "migrate",
        "--dry-run",
        "--synapse-config",
        "a.yaml",
        "--synapse-config",
        "b.yaml",
        "--synapse-database-uri",
        "sqlite:///data/homeserver.db",
    ])
    .unwrap();
    let crate::cli::Command::Syn2mas {
        command: Command::Migrate { source, dry_run },
    } = options.command
    else {
        panic!("not syn2mas migrate");
    };
    assert!(dry_run);
    assert_eq!(source.synapse_config, ["a.yaml", "b.yaml"]);
    assert_eq!(
        source.synapse_database_uri.as_deref(),
        Some("sqlite:///data/homeserver.db")
    );
}
