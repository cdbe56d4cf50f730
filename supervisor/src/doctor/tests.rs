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

fn write_registration(layout: &Layout, name: &str, id: &str, url: &str) {
    let dir = layout.appservices_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            "id: {id}\nurl: {url}\nas_token: as-{id}-s3cret\nhs_token: hs-{id}-s3cret\n\
             sender_localpart: {id}bot\nnamespaces: {{users: []}}\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn appservices_none_registered_is_one_passing_line() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    let checks = appservices(&layout, "example.com").await;
    assert_eq!(checks.len(), 1);
    assert!(checks[0].ok, "{}", checks[0]);
    assert!(
        checks[0].text.starts_with("appservices: none registered"),
        "{}",
        checks[0]
    );
}

#[tokio::test]
async fn appservices_are_listed_with_url_and_sender_and_a_dead_url_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    // Something answering HTTP (any status counts), a closed port, and push turned off.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let alive = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let dead = unused_port();
    write_registration(
        &layout,
        "a.yaml",
        "alive",
        &format!("http://127.0.0.1:{alive}"),
    );
    write_registration(
        &layout,
        "b.yaml",
        "dead",
        &format!("http://127.0.0.1:{dead}"),
    );
    write_registration(&layout, "c.yaml", "quiet", "null");
    let checks = appservices(&layout, "example.com").await;
    let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        format!(
            "✅ appservice alive (appservices/a.yaml): http://127.0.0.1:{alive} answers (HTTP 404); \
             sender @alivebot:example.com"
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "❌ appservice dead (appservices/b.yaml): http://127.0.0.1:{dead}: cannot connect"
        )),
        "{lines:?}"
    );
    assert!(lines[1].contains("start the bridge"), "{lines:?}");
    assert_eq!(
        lines[2],
        "✅ appservice quiet (appservices/c.yaml): no URL, push disabled; sender @quietbot:example.com"
    );
    assert!(lines.iter().all(|l| !l.contains("s3cret")), "{lines:?}");
}

#[tokio::test]
async fn appservices_with_a_bad_registration_fail_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    write_registration(&layout, "a.yaml", "one", "null");
    write_registration(&layout, "b.yaml", "one", "null");
    let checks = appservices(&layout, "example.com").await;
    let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "id, sender and both tokens: {lines:?}");
    assert_eq!(
        lines[..2],
        [
            "❌ appservices: appservices/b.yaml: id: \"one\" is also used by appservices/a.yaml; \
             the appliance does not start until this is fixed",
            "❌ appservices: appservices/b.yaml: sender_localpart: \"onebot\" is also used by \
             appservices/a.yaml; the appliance does not start until this is fixed",
        ]
    );
    assert!(lines.iter().all(|l| !l.contains("s3cret")), "{lines:?}");
}

#[test]
fn accounts_line_names_the_registration_mode_and_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    let mail = [
        ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
        ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
        ("CLOUDRON_MAIL_FROM", "matrix@example.com"),
    ];
    let line = |vars: &[(&str, &str)]| {
        let check = accounts(&env(vars), &layout, "example.com");
        assert!(check.ok, "{check}");
        check.text
    };
    let off = line(&[]);
    assert!(off.starts_with("accounts: registration off"), "{off}");
    assert!(off.contains("manage register-user"), "{off}");
    assert!(off.contains("recovery: unavailable (mail is off"), "{off}");

    let token = line(&[("APPLIANCE_REGISTRATION", "token")]);
    assert!(
        token.contains("registration with a registration token"),
        "{token}"
    );
    assert!(token.contains("issue-user-registration-token"), "{token}");

    let open_no_mail = line(&[("APPLIANCE_REGISTRATION", "open")]);
    assert!(
        open_no_mail.contains("open, but mail is off: a registration token is needed"),
        "{open_no_mail}"
    );

    let mut open_mail = vec![("APPLIANCE_REGISTRATION", "open")];
    open_mail.extend(mail);
    let open_mail = line(&open_mail);
    assert!(
        open_mail.contains("registration open to anyone, with an email address verified"),
        "{open_mail}"
    );
    assert!(
        open_mail.ends_with("password recovery by email: available"),
        "{open_mail}"
    );

    let mut sso = vec![("APPLIANCE_PASSWORD_LOGIN", "false")];
    sso.extend(mail);
    let sso = line(&sso);
    assert!(sso.contains("unavailable (password login is off)"), "{sso}");
}
