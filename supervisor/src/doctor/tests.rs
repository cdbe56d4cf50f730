use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Instant;

use super::*;

fn env(vars: &[(&str, &str)]) -> Env {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env::parse(&map, Path::new("/srv")).unwrap()
}

fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_secrets(layout: &Layout) {
    let dir = layout.secrets_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in SECRET_FILES {
        let path = dir.join(name);
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn secrets_pass_when_all_present_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    write_secrets(&layout);
    let check = secrets(&layout);
    assert!(check.ok, "{check}");
    assert!(check.to_string().starts_with("✅ secrets: all 8 present"));
}

#[test]
fn secrets_name_each_wrong_mode_and_missing_file_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    write_secrets(&layout);
    let dir = layout.secrets_dir();
    std::fs::set_permissions(
        dir.join("mas_rsa.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::remove_file(dir.join("synapse_signing.key")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let check = secrets(&layout);
    assert!(!check.ok);
    let text = check.to_string();
    assert!(text.starts_with("❌ secrets: "), "{text}");
    assert!(text.contains("chmod 700"), "{text}");
    assert!(text.contains("mas_rsa.pem (it is 644)"), "{text}");
    assert!(text.contains("synapse_signing.key missing"), "{text}");
}

#[test]
fn secrets_without_a_secrets_dir_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    let check = secrets(&layout);
    assert!(!check.ok);
    assert!(check.text.contains("does not exist"), "{check}");
}

#[test]
fn free_disk_fails_under_one_gibibyte() {
    let dir = Path::new("/data");
    assert!(check_free(dir, Ok(MIN_FREE_BYTES)).ok);
    let low = check_free(dir, Ok(200 << 20));
    assert!(!low.ok);
    assert!(low.text.contains("only 200 MiB free"), "{low}");
    assert!(!check_free(dir, Err(nix::Error::ENOENT)).ok);
    assert!(free_bytes(Path::new("/")).unwrap() > 0);
}

#[test]
fn expected_well_known_bodies_are_the_routers() {
    let https = Url::parse("https://matrix.example.com").unwrap();
    assert_eq!(
        expected_server(&https),
        json!({"m.server": "matrix.example.com:443"})
    );
    assert_eq!(
        expected_client(&https),
        json!({
            "m.homeserver": {"base_url": "https://matrix.example.com"},
            "org.matrix.msc2965.authentication": {
                "issuer": "https://matrix.example.com/auth/",
                "account": "https://matrix.example.com/auth/account/",
            },
        })
    );
    let local = Url::parse("http://localhost:8000").unwrap();
    assert_eq!(
        expected_server(&local),
        json!({"m.server": "localhost:8000"})
    );
}

#[test]
fn delegation_is_checked_on_the_server_names_domain() {
    let e = env(&[("CLOUDRON_APP_ORIGIN", "https://matrix.example.com")]);
    assert_eq!(server_name_base(&e, "example.com"), "https://example.com");
    assert_eq!(
        server_name_base(&e, "matrix.example.com"),
        "https://matrix.example.com"
    );
    let local = env(&[("CLOUDRON_APP_ORIGIN", "http://localhost:8123")]);
    assert_eq!(
        server_name_base(&local, "localhost"),
        "http://localhost:8123"
    );
}

#[test]
fn the_pinned_synapse_version_is_read_from_versions_sh() {
    let v = pinned_synapse_version().unwrap();
    assert!(v.split('.').count() == 3, "{v}");
}

#[tokio::test]
async fn without_a_running_appliance_every_line_says_so_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let http = unused_port().to_string();
    let e = env(&[
        ("CLOUDRON_APP_ORIGIN", &format!("http://127.0.0.1:{http}")),
        ("APPLIANCE_HTTP_PORT", &http),
        ("APPLIANCE_SYNAPSE_PORT", &unused_port().to_string()),
        ("APPLIANCE_MAS_PORT", &unused_port().to_string()),
    ]);
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    std::fs::create_dir_all(&layout.data).unwrap();
    let start = Instant::now();
    let checks = run(&e, &layout, "127.0.0.1").await;
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(!checks[0].ok);
    assert!(
        checks[0].text.starts_with("the appliance is not running"),
        "{}",
        checks[0]
    );
    let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("✅ ") || l.starts_with("❌ ")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Synapse version: unknown")),
        "{lines:#?}"
    );
}

#[test]
fn test_email_command_runs_as_the_target_user() {
    if !crate::privileges::is_root() {
        eprintln!("skipped: changing user needs root (CI runs as root)");
        return;
    }
    let nobody = crate::privileges::target(Some("nobody"), false)
        .unwrap()
        .unwrap();
    // A stand-in for mas-cli that says who runs it and with which arguments; its directory must
    // be searchable by `nobody`.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = tmp.path().join("mas-cli");
    std::fs::write(
        &program,
        "#!/bin/sh\necho \"$(id -u) $(id -g) $(id -G) $*\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = test_email_command(
        &program,
        Path::new("/run/mas.yaml"),
        "admin@example.com",
        Some(&nobody),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{uid} {gid} {gid} -c /run/mas.yaml doctor --send-test-email admin@example.com\n")
    );
}
