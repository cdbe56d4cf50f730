use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::render;

fn env(vars: &[(&str, &str)]) -> Env {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env::parse(&map, Path::new("/")).unwrap()
}

const OIDC: &[(&str, &str)] = &[
    ("APPLIANCE_SERVER_NAME", "example.com"),
    ("CLOUDRON_OIDC_ISSUER", "https://my.example.com/openid"),
    ("CLOUDRON_OIDC_CLIENT_ID", "cid"),
    ("CLOUDRON_OIDC_CLIENT_SECRET", "csecret"),
];

/// An old Synapse in `dir/old`: config with relative paths, a signing key, a media file, an
/// SQLite database file.
fn old_synapse(dir: &Path, extra: &str) -> PathBuf {
    let old = dir.join("old");
    std::fs::create_dir_all(old.join("media/local_content/ab")).unwrap();
    std::fs::write(old.join("media/local_content/ab/cd"), b"picture").unwrap();
    std::fs::write(old.join("example.com.signing.key"), "ed25519 a_old AAAA\n").unwrap();
    std::fs::write(old.join("homeserver.db"), b"").unwrap();
    let config = old.join("homeserver.yaml");
    std::fs::write(
        &config,
        format!(
            "server_name: example.com\nsigning_key_path: example.com.signing.key\n\
             macaroon_secret_key: mac-old\nform_secret: form-old\nmedia_store_path: media\n\
             database: {{name: sqlite3, args: {{database: homeserver.db}}}}\n\
             password_config: {{pepper: pep-old}}\n{extra}"
        ),
    )
    .unwrap();
    config
}

#[test]
fn reads_every_key_with_paths_relative_to_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = old_synapse(
        tmp.path(),
        "oidc_providers: [{idp_id: cloudron, issuer: x}]\n",
    );
    let old = OldSynapse::read(&config).unwrap();
    let dir = tmp.path().join("old");
    assert_eq!(old.server_name, "example.com");
    assert_eq!(old.signing_key, dir.join("example.com.signing.key"));
    assert_eq!(old.macaroon_secret_key.as_deref(), Some("mac-old"));
    assert_eq!(old.form_secret.as_deref(), Some("form-old"));
    assert_eq!(old.media_store, dir.join("media"));
    assert_eq!(old.database, OldDatabase::Sqlite(dir.join("homeserver.db")));
    assert_eq!(old.pepper.as_deref(), Some("pep-old"));
    assert!(old.password_login);
    assert_eq!(old.oidc_provider_ids, vec!["oidc-cloudron".to_owned()]);
    let debug = format!("{old:?}");
    assert!(
        !debug.contains("mac-old") && !debug.contains("pep-old"),
        "{debug}"
    );
}

#[test]
fn missing_keys_take_synapse_defaults_and_secret_files_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("k"), "ed25519 a_x AAAA\n").unwrap();
    std::fs::write(dir.join("mac"), "mac-from-file\n").unwrap();
    let config = dir.join("homeserver.yaml");
    std::fs::write(
        &config,
        "server_name: example.com\nsigning_key_path: k\nmacaroon_secret_key_path: mac\n\
         database: {name: psycopg2, args: {user: synapse, dbname: synapse, host: db}}\n\
         password_config: {enabled: only_for_reauth}\noidc_providers: [{issuer: x}]\n",
    )
    .unwrap();
    let old = OldSynapse::read(&config).unwrap();
    assert_eq!(old.macaroon_secret_key.as_deref(), Some("mac-from-file"));
    assert_eq!(old.form_secret, None);
    assert_eq!(old.pepper, None);
    assert_eq!(old.media_store, dir.join("media_store"));
    assert_eq!(
        old.database,
        OldDatabase::Postgres {
            host: "db".into(),
            port: 5432,
            user: "synapse".into(),
            dbname: "synapse".into()
        }
    );
    assert!(!old.password_login, "only_for_reauth is no password login");
    assert_eq!(old.oidc_provider_ids, vec!["oidc".to_owned()]);
}

#[test]
fn a_missing_signing_key_file_is_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = old_synapse(tmp.path(), "");
    std::fs::remove_file(tmp.path().join("old/example.com.signing.key")).unwrap();
    let err = OldSynapse::read(&config).unwrap_err();
    assert_eq!(err.lines.len(), 1, "{err}");
    assert!(
        err.lines[0].contains("signing_key_path")
            && err.lines[0].contains("example.com.signing.key")
            && err.lines[0].contains("does not exist"),
        "{err}"
    );
    let none = tmp.path().join("none.yaml");
    std::fs::write(&none, "{}").unwrap();
    let err = OldSynapse::read(&none).unwrap_err();
    assert!(err.to_string().contains("server_name: not set"), "{err}");
    assert!(
        err.to_string().contains("signing_key_path: not set"),
        "{err}"
    );
}

#[test]
fn another_server_name_is_refused_with_both_names() {
    let tmp = tempfile::tempdir().unwrap();
    let old = OldSynapse::read(&old_synapse(tmp.path(), "")).unwrap();
    let err = check_server_name(&old, "other.org")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"example.com\"") && err.contains("\"other.org\""),
        "{err}"
    );
    check_server_name(&old, "example.com").unwrap();
}

#[test]
fn the_automatic_path_migrates_only_synapse_users_into_an_empty_mas_once() {
    assert_eq!(decide(false, 3, None), AutoDecision::Migrate);
    assert!(matches!(decide(true, 3, None), AutoDecision::Skip(_)));
    assert!(matches!(decide(false, 0, None), AutoDecision::Skip(_)));
    assert!(matches!(decide(false, 3, Some(3)), AutoDecision::Skip(_)));
    // MAS has run here (its tables exist) but has no users: a user provisioned in Synapse by
    // hand is not a Synapse to take over.
    assert!(matches!(decide(false, 3, Some(0)), AutoDecision::Skip(_)));
}

#[test]
fn the_platform_provider_takes_over_exactly_one_old_oidc_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let one = old_synapse(tmp.path(), "oidc_providers: [{idp_id: cloudron}]\n");
    let old = OldSynapse::read(&one).unwrap();
    assert_eq!(
        idp_for_platform(&env(OIDC), &old).as_deref(),
        Some("oidc-cloudron")
    );
    assert_eq!(
        idp_for_platform(&env(&[]), &old),
        None,
        "no platform provider"
    );
    let two = old_synapse(tmp.path(), "oidc_providers: [{idp_id: a}, {idp_id: b}]\n");
    assert_eq!(
        idp_for_platform(&env(OIDC), &OldSynapse::read(&two).unwrap()),
        None
    );
}

fn yaml(s: &str) -> serde_yaml::Value {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn the_rendered_mas_yaml_keeps_synapse_hashes_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    std::fs::create_dir_all(layout.secrets_dir()).unwrap();
    std::fs::write(layout.secret(PEPPER_FILE), "pep").unwrap();
    let import = SynapseImport {
        source: "x".into(),
        password_login: true,
        synapse_idp_id: Some("oidc-cloudron".into()),
    };
    let e = env(OIDC);
    let mas = yaml(
        &render::render_with(&e, &layout, "example.com", Some(&import))
            .unwrap()
            .mas,
    );
    let schemes = mas["passwords"]["schemes"].as_sequence().unwrap();
    assert_eq!(schemes[0]["version"], 1);
    assert_eq!(schemes[0]["algorithm"], "bcrypt");
    assert_eq!(schemes[0]["unicode_normalization"], true);
    assert_eq!(
        schemes[0]["secret_file"].as_str().unwrap(),
        layout.secret(PEPPER_FILE).display().to_string()
    );
    assert_eq!(schemes[1]["version"], 2);
    assert_eq!(schemes[1]["algorithm"], "argon2id");
    assert_eq!(
        mas["passwords"]["enabled"], true,
        "the old Synapse had password login"
    );
    let provider = &mas["upstream_oauth2"]["providers"][0];
    assert_eq!(provider["id"], render::CLOUDRON_PROVIDER_ID);
    assert_eq!(provider["synapse_idp_id"], "oidc-cloudron");

    // The admin's explicit choice wins over the old Synapse's.
    let mut vars = OIDC.to_vec();
    vars.push(("APPLIANCE_PASSWORD_LOGIN", "false"));
    let mas = yaml(
        &render::render_with(&env(&vars), &layout, "example.com", Some(&import))
            .unwrap()
            .mas,
    );
    assert_eq!(mas["passwords"]["enabled"], false);

    // Without a takeover: one argon2id scheme, no synapse_idp_id, as before.
    let mas = yaml(
        &render::render_with(&e, &layout, "example.com", None)
            .unwrap()
            .mas,
    );
    assert_eq!(mas["passwords"]["schemes"].as_sequence().unwrap().len(), 1);
    assert!(
        mas["upstream_oauth2"]["providers"][0]
            .get("synapse_idp_id")
            .is_none()
    );
}

#[test]
fn the_syn2mas_arguments_follow_its_interface() {
    let args = syn2mas_args(
        Path::new("/run/mas.yaml"),
        Path::new("/run/s.yaml"),
        "migrate",
        true,
    );
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "--config",
            "/run/mas.yaml",
            "syn2mas",
            "migrate",
            "--dry-run",
            "--synapse-config",
            "/run/s.yaml"
        ]
    );
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(1_700_000_000), "20231114T221320Z");
}

/// Every file under `dir` with its contents and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
                out.insert(entry.path(), (Vec::new(), meta.permissions().mode()));
            } else {
                let contents = std::fs::read(entry.path()).unwrap();
                out.insert(entry.path(), (contents, meta.permissions().mode()));
            }
        }
    }
    out
}

/// A stand-in for a tool: a shell script that logs its arguments and exits with `code`.
fn stub(dir: &Path, name: &str, code: i32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >> {}\necho '{name} report'\ncase \"$*\" in *syn2mas*) exit {code};; esac\n",
            dir.join("calls.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn started(tmp: &Path, e: &Env) -> (Layout, Pin) {
    let layout = Layout::new(&tmp.join("data"), &tmp.join("data/run"));
    let pin = state::check(&layout, e).unwrap();
    bootstrap::prepare(e, &layout, &pin).unwrap();
    (layout.clone(), state::check(&layout, e).unwrap())
}

#[test]
fn a_dry_run_from_another_synapse_changes_nothing_in_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env(&[("APPLIANCE_SERVER_NAME", "example.com")]);
    let (layout, pin) = started(tmp.path(), &e);
    let from = old_synapse(tmp.path(), "");
    let tools_dir = tmp.path().join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let tools = Tools {
        python: stub(&tools_dir, "python", 0),
        mas_cli: stub(&tools_dir, "mas-cli", 0),
    };
    let before = snapshot(&layout.data);
    let options = Options {
        dry_run: true,
        from: Some(from),
    };
    let report = by_hand(&e, &layout, &pin, &tools, &options).unwrap();
    assert!(report.contains("mas-cli report"), "{report}");
    assert_eq!(snapshot(&layout.data), before, "the data dir changed");
    let calls = std::fs::read_to_string(tools_dir.join("calls.log")).unwrap();
    assert!(
        calls.contains("update_synapse_database --database-config"),
        "{calls}"
    );
    assert!(calls.contains("database migrate"), "{calls}");
    assert!(calls.contains("syn2mas check --synapse-config"), "{calls}");
    assert!(
        calls.contains("syn2mas migrate --dry-run --synapse-config"),
        "{calls}"
    );
    assert!(
        !calls.contains("syn2mas migrate --synapse-config"),
        "{calls}"
    );
}

#[test]
fn a_real_run_imports_backs_up_migrates_and_refuses_a_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env(&[("APPLIANCE_SERVER_NAME", "example.com")]);
    let (layout, pin) = started(tmp.path(), &e);
    let old_key = std::fs::read(layout.secret("synapse_signing.key")).unwrap();
    let from = old_synapse(tmp.path(), "");
    let tools_dir = tmp.path().join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let tools = Tools {
        python: stub(&tools_dir, "python", 0),
        mas_cli: stub(&tools_dir, "mas-cli", 0),
    };
    let options = Options {
        dry_run: false,
        from: Some(from),
    };
    by_hand(&e, &layout, &pin, &tools, &options).unwrap();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(
        read(layout.secret("synapse_signing.key")),
        "ed25519 a_old AAAA\n"
    );
    assert_eq!(read(layout.secret("synapse_macaroon")), "mac-old");
    assert_eq!(read(layout.secret("synapse_form_secret")), "form-old");
    assert_eq!(read(layout.secret(PEPPER_FILE)), "pep-old");
    assert_eq!(
        read(layout.synapse_dir().join("media_store/local_content/ab/cd")),
        "picture"
    );
    assert!(layout.synapse_dir().join("homeserver.db").exists());
    let backups: Vec<_> = std::fs::read_dir(layout.backups_dir())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read(backups[0].path().join("synapse_signing.key")).unwrap(),
        old_key
    );
    let st = state::read(&layout).unwrap();
    assert!(st.migrated_from_synapse.is_some());
    assert!(st.synapse_import.unwrap().password_login);
    let mas = yaml(&read(layout.mas_yaml()));
    assert_eq!(mas["passwords"]["schemes"][0]["algorithm"], "bcrypt");
    let calls = read(tools_dir.join("calls.log"));
    assert!(
        calls.contains("syn2mas migrate --synapse-config"),
        "{calls}"
    );

    let again = by_hand(&e, &layout, &pin, &tools, &options)
        .unwrap_err()
        .to_string();
    assert!(again.contains("already migrated"), "{again}");
}

#[test]
fn a_failed_check_stops_with_the_report_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env(&[("APPLIANCE_SERVER_NAME", "example.com")]);
    let (layout, pin) = started(tmp.path(), &e);
    let tools_dir = tmp.path().join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let tools = Tools {
        python: stub(&tools_dir, "python", 0),
        mas_cli: stub(&tools_dir, "mas-cli", EXIT_ERRORS),
    };
    let before = snapshot(&layout.data);
    let err = on_start(&e, &layout, &pin, &tools, || Ok((3, None))).unwrap_err();
    assert!(
        matches!(err, MigrateError::Failed(_) | MigrateError::CheckFailed(_)),
        "{err}"
    );
    assert!(err.to_string().contains("mas-cli report"), "{err}");
    assert_eq!(snapshot(&layout.data), before, "the data dir changed");
}

#[test]
fn appservice_users_do_not_count_as_synapse_users_to_import() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("homeserver.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{ConnectOptions as _, Connection as _};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE users (name TEXT, appservice_id TEXT); \
             INSERT INTO users VALUES ('@whatsappbot:example.com', 'whatsapp'), \
                                      ('@whatsapp_1:example.com', 'whatsapp');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            steps::sqlite_count(&file, steps::SYNAPSE_USERS)
                .await
                .unwrap(),
            Some(0),
            "a bridge's users alone do not start a migration"
        );
        sqlx::raw_sql("INSERT INTO users VALUES ('@alice:example.com', NULL)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        assert_eq!(
            steps::sqlite_count(&file, steps::SYNAPSE_USERS)
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(steps::sqlite_count(&file, "").await.unwrap(), Some(3));
        let missing = tmp.path().join("mas.db");
        assert_eq!(steps::sqlite_count(&missing, "").await.unwrap(), None);
    });
}

#[test]
fn the_stock_cloudron_package_config_is_taken_over_at_the_first_start_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env(OIDC);
    let (layout, pin) = started(tmp.path(), &e);
    // The old package's files in the data dir, named by its config (relative to the config).
    let configs = layout.data.join("configs");
    std::fs::create_dir_all(configs.join("media/local_content/ab")).unwrap();
    std::fs::write(configs.join("media/local_content/ab/cd"), b"picture").unwrap();
    std::fs::write(
        configs.join("example.com.signing.key"),
        "ed25519 a_pkg BBBB\n",
    )
    .unwrap();
    std::fs::write(configs.join("homeserver.db"), b"").unwrap();
    let package = layout.cloudron_package_config();
    let text = "server_name: example.com\nsigning_key_path: example.com.signing.key\n\
                macaroon_secret_key: mac-pkg\nform_secret: form-pkg\nmedia_store_path: media\n\
                database: {name: sqlite3, args: {database: homeserver.db}}\n\
                password_config: {enabled: true}\n\
                oidc_providers: [{idp_id: cloudron, issuer: 'https://my.example.com/openid'}]\n";
    std::fs::write(&package, text).unwrap();
    let tools_dir = tmp.path().join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let tools = Tools {
        python: stub(&tools_dir, "python", 0),
        mas_cli: stub(&tools_dir, "mas-cli", 0),
    };

    // No users counted anywhere: the package's config alone starts the takeover.
    let summary = on_start(&e, &layout, &pin, &tools, || Ok((0, Some(0)))).unwrap();
    assert!(summary.is_some(), "the package's config is taken over");
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(
        read(layout.secret("synapse_signing.key")),
        "ed25519 a_pkg BBBB\n"
    );
    assert_eq!(read(layout.secret("synapse_macaroon")), "mac-pkg");
    assert_eq!(
        read(layout.synapse_dir().join("media_store/local_content/ab/cd")),
        "picture"
    );
    let st = state::read(&layout).unwrap();
    assert!(st.migrated_from_synapse.is_some());
    let import = st.synapse_import.unwrap();
    assert_eq!(import.synapse_idp_id.as_deref(), Some("oidc-cloudron"));
    assert!(import.password_login, "password login stays on");
    let mas = yaml(&read(layout.mas_yaml()));
    let provider = &mas["upstream_oauth2"]["providers"][0];
    assert_eq!(provider["id"], render::CLOUDRON_PROVIDER_ID);
    assert_eq!(provider["synapse_idp_id"], "oidc-cloudron");
    assert_eq!(read(package), text, "the old config is kept as it was");
    assert!(
        configs.join("example.com.signing.key").exists(),
        "old files are kept"
    );

    // The next start does nothing more, and opens no database to find that out.
    let counted = std::cell::Cell::new(false);
    let counts = || {
        counted.set(true);
        Ok((6, Some(6)))
    };
    assert_eq!(on_start(&e, &layout, &pin, &tools, counts).unwrap(), None);
    assert!(!counted.get(), "a migrated data dir is not counted again");
}
