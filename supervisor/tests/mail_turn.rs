//! Mail and TURN rendering (issue 6) from the platform's `sendmail` and `turn` variables, into
//! both configs; the rendered MAS config builds a mailer that delivers to an SMTP sink.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly by design")]

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;
use supervisor::env::Env;
use supervisor::paths::Layout;
use supervisor::{render, secrets, state};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

struct Rendered {
    _tmp: tempfile::TempDir,
    homeserver: Value,
    mas_text: String,
    mas: Value,
}

fn render_for(vars: &[(&str, &str)]) -> Rendered {
    let tmp = tempfile::tempdir().unwrap();
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = Env::parse(&map, Path::new("/")).unwrap();
    let layout = Layout::new(&tmp.path().join("data"), &tmp.path().join("run"));
    let pin = state::check(&layout, &env).unwrap();
    secrets::ensure_secrets(&layout, &mut rand::rngs::OsRng).unwrap();
    let r = render::render(&env, &layout, pin.server_name()).unwrap();
    Rendered {
        _tmp: tmp,
        homeserver: serde_yaml::from_str(&r.homeserver).unwrap(),
        mas: serde_yaml::from_str(&r.mas).unwrap(),
        mas_text: r.mas,
    }
}

const MAIL: &[(&str, &str)] = &[
    ("CLOUDRON_APP_ORIGIN", "https://matrix.example.com"),
    ("CLOUDRON_MAIL_SMTP_SERVER", "mail"),
    ("CLOUDRON_MAIL_SMTP_PORT", "2525"),
    ("CLOUDRON_MAIL_SMTPS_PORT", "2465"),
    ("CLOUDRON_MAIL_SMTP_USERNAME", "matrix-app"),
    ("CLOUDRON_MAIL_SMTP_PASSWORD", "relay-secret"),
    ("CLOUDRON_MAIL_FROM", "matrix.app@example.com"),
    ("CLOUDRON_MAIL_FROM_DISPLAY_NAME", "Example Chat"),
];

#[test]
fn platform_mail_renders_plain_smtp_for_mas_and_synapse() {
    let r = render_for(MAIL);
    let email = &r.mas["email"];
    assert_eq!(email["transport"], "smtp");
    assert_eq!(
        email["mode"], "plain",
        "the plain port wins: TLS is off on it"
    );
    assert_eq!(email["hostname"], "mail");
    assert_eq!(email["port"], 2525);
    assert_eq!(email["username"], "matrix-app");
    assert_eq!(email["password"], "relay-secret");
    assert_eq!(email["from"], "\"Example Chat\" <matrix.app@example.com>");
    assert!(email.get("accept_invalid_certs").is_none());

    let hs = &r.homeserver["email"];
    assert_eq!(hs["smtp_host"], "mail");
    assert_eq!(hs["smtp_port"], 2525);
    assert_eq!(hs["smtp_user"], "matrix-app");
    assert_eq!(hs["smtp_pass"], "relay-secret");
    assert_eq!(hs["force_tls"], false);
    assert_eq!(hs["enable_tls"], false);
    assert_eq!(hs["require_transport_security"], false);
    assert_eq!(
        hs["notif_from"],
        "\"Example Chat\" <matrix.app@example.com>"
    );

    let config = mas::config::from_str(&r.mas_text).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
}

#[test]
fn only_an_smtps_port_renders_implicit_tls() {
    let vars: Vec<_> = MAIL
        .iter()
        .copied()
        .filter(|(k, _)| *k != "CLOUDRON_MAIL_SMTP_PORT")
        .collect();
    let r = render_for(&vars);
    assert_eq!(r.mas["email"]["mode"], "tls");
    assert_eq!(r.mas["email"]["port"], 2465);
    assert_eq!(r.mas["email"]["accept_invalid_certs"], true);
    // Synapse refuses force_tls without enable_tls.
    assert_eq!(r.homeserver["email"]["force_tls"], true);
    assert_eq!(r.homeserver["email"]["enable_tls"], true);
    let config = mas::config::from_str(&r.mas_text).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    assert!(
        mas::email::Mailer::from_config(&config.email)
            .unwrap()
            .is_enabled()
    );
}

#[test]
fn without_a_display_name_from_is_the_bare_address_and_percent_is_escaped_for_synapse() {
    let vars: Vec<_> = MAIL
        .iter()
        .copied()
        .filter(|(k, _)| *k != "CLOUDRON_MAIL_FROM_DISPLAY_NAME")
        .collect();
    let r = render_for(&vars);
    assert_eq!(r.mas["email"]["from"], "matrix.app@example.com");
    assert_eq!(
        r.homeserver["email"]["notif_from"],
        "matrix.app@example.com"
    );

    let mut vars = MAIL.to_vec();
    vars.retain(|(k, _)| *k != "CLOUDRON_MAIL_FROM_DISPLAY_NAME");
    vars.push(("CLOUDRON_MAIL_FROM_DISPLAY_NAME", "100% Chat"));
    let r = render_for(&vars);
    assert_eq!(
        r.mas["email"]["from"],
        "\"100% Chat\" <matrix.app@example.com>"
    );
    assert_eq!(
        r.homeserver["email"]["notif_from"],
        "\"100%% Chat\" <matrix.app@example.com>"
    );
}

#[test]
fn no_mail_variables_mean_mail_off_in_both() {
    let r = render_for(&[("CLOUDRON_APP_ORIGIN", "https://matrix.example.com")]);
    assert_eq!(r.mas["email"]["transport"], "blackhole");
    assert!(r.mas["email"].get("hostname").is_none());
    assert!(r.homeserver.get("email").is_none());
    let config = mas::config::from_str(&r.mas_text).unwrap();
    assert!(config.validate().is_empty());
    assert!(
        !mas::email::Mailer::from_config(&config.email)
            .unwrap()
            .is_enabled()
    );
}

#[test]
fn turn_variables_render_uris_and_the_shared_secret() {
    let r = render_for(&[
        ("CLOUDRON_TURN_SERVER", "turn.example.com"),
        ("CLOUDRON_TURN_PORT", "3478"),
        ("CLOUDRON_TURN_TLS_PORT", "5349"),
        ("CLOUDRON_TURN_SECRET", "turn-secret"),
    ]);
    let uris: Vec<&str> = r.homeserver["turn_uris"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "turn:turn.example.com:3478?transport=udp",
            "turn:turn.example.com:3478?transport=tcp",
            "turns:turn.example.com:5349?transport=tcp",
        ]
    );
    assert_eq!(r.homeserver["turn_shared_secret"], "turn-secret");
    let none = render_for(&[]);
    assert!(none.homeserver.get("turn_uris").is_none());
    assert!(none.homeserver.get("turn_shared_secret").is_none());
}

/// Accepts one plain SMTP session and returns the message data.
async fn sink() -> (u16, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut data = String::new();
        write.write_all(b"220 sink\r\n").await.unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                write
                    .write_all(b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n")
                    .await
                    .unwrap();
            } else if upper.starts_with("AUTH") {
                write.write_all(b"235 ok\r\n").await.unwrap();
            } else if upper.starts_with("DATA") {
                write.write_all(b"354 go\r\n").await.unwrap();
                while let Some(l) = lines.next_line().await.unwrap() {
                    if l == "." {
                        break;
                    }
                    data.push_str(&l);
                    data.push('\n');
                }
                write.write_all(b"250 queued\r\n").await.unwrap();
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                write.write_all(b"250 ok\r\n").await.unwrap();
            }
        }
        data
    });
    (port, task)
}

#[tokio::test]
async fn the_rendered_mas_config_delivers_a_test_email_with_the_right_from() {
    let (port, task) = sink().await;
    let port = port.to_string();
    let mut vars = MAIL.to_vec();
    vars.retain(|(k, _)| !k.starts_with("CLOUDRON_MAIL_SMTP"));
    vars.extend([
        ("CLOUDRON_MAIL_SMTP_SERVER", "127.0.0.1"),
        ("CLOUDRON_MAIL_SMTP_PORT", port.as_str()),
        ("CLOUDRON_MAIL_SMTP_USERNAME", "u"),
        ("CLOUDRON_MAIL_SMTP_PASSWORD", "p"),
    ]);
    let r = render_for(&vars);
    let config = mas::config::from_str(&r.mas_text).unwrap();
    let mailer = mas::email::Mailer::from_config(&config.email).unwrap();
    mailer
        .send_test("admin@example.org", &config.matrix.homeserver)
        .await
        .unwrap();
    let data = task.await.unwrap();
    assert!(
        data.contains("From: \"Example Chat\" <matrix.app@example.com>"),
        "{data}"
    );
    assert!(data.contains("To: admin@example.org"), "{data}");
}
