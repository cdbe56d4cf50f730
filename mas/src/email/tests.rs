//! The mailer against an in-process SMTP sink (plain SMTP, as the platform's relay port).

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;
use crate::config::{EmailConfig, EmailTransport};

/// What the sink saw during one session.
#[derive(Debug, Default)]
struct Session {
    commands: Vec<String>,
    data: String,
}

/// Accepts one SMTP session on loopback, answers like a permissive relay (AUTH included) and
/// reports the commands and the message.
async fn sink() -> (u16, oneshot::Receiver<Session>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut session = Session::default();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            let upper = line.to_ascii_uppercase();
            session.commands.push(line.clone());
            let answer: &[u8] = if upper.starts_with("EHLO") {
                b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("AUTH") {
                b"235 2.7.0 ok\r\n"
            } else if upper.starts_with("DATA") {
                write.write_all(b"354 go on\r\n").await.unwrap();
                while let Some(data) = lines.next_line().await.unwrap() {
                    if data == "." {
                        break;
                    }
                    session.data.push_str(&data);
                    session.data.push('\n');
                }
                b"250 2.0.0 queued as 42\r\n"
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            write.write_all(answer).await.unwrap();
        }
        let _ = tx.send(session);
    });
    (port, rx)
}

fn smtp_config(port: u16, credentials: bool) -> EmailConfig {
    EmailConfig {
        from: r#""Example Chat" <matrix@example.com>"#.to_owned(),
        reply_to: "matrix@example.com".to_owned(),
        transport: EmailTransport::Smtp,
        mode: Some(SmtpMode::Plain),
        hostname: Some("127.0.0.1".to_owned()),
        port: Some(port),
        username: credentials.then(|| "relay-user".to_owned()),
        password: credentials.then(|| "relay-pass".to_owned()),
        ..EmailConfig::default()
    }
}

#[tokio::test]
async fn plain_smtp_delivers_the_test_email_with_the_display_name() {
    let (port, seen) = sink().await;
    let mailer = Mailer::from_config(&smtp_config(port, false)).unwrap();
    assert!(mailer.is_enabled());
    let delivered = mailer
        .send_test("admin@example.org", "example.com")
        .await
        .unwrap();
    assert_eq!(delivered.via, format!("smtp://127.0.0.1:{port} (plain)"));
    assert!(delivered.response.unwrap().starts_with("250"));
    let session = seen.await.unwrap();
    assert!(
        session
            .commands
            .iter()
            .any(|c| c == "MAIL FROM:<matrix@example.com>"),
        "{:?}",
        session.commands
    );
    assert!(
        session
            .commands
            .iter()
            .any(|c| c == "RCPT TO:<admin@example.org>")
    );
    assert!(
        !session.commands.iter().any(|c| c.starts_with("STARTTLS")),
        "plain mode never upgrades"
    );
    assert!(
        session
            .data
            .contains("From: \"Example Chat\" <matrix@example.com>"),
        "{}",
        session.data
    );
    assert!(
        session
            .data
            .contains("Subject: Test email from the Matrix server example.com")
    );
}

#[tokio::test]
async fn smtp_authenticates_when_credentials_are_set() {
    let (port, seen) = sink().await;
    let mailer = Mailer::from_config(&smtp_config(port, true)).unwrap();
    mailer
        .send_test("a@example.org", "example.com")
        .await
        .unwrap();
    let session = seen.await.unwrap();
    assert!(
        session.commands.iter().any(|c| c.starts_with("AUTH PLAIN")),
        "{:?}",
        session.commands
    );
}

#[tokio::test]
async fn blackhole_refuses_and_names_the_variables_that_enable_mail() {
    let mailer = Mailer::from_config(&EmailConfig::default()).unwrap();
    assert!(!mailer.is_enabled());
    let error = mailer
        .send_test("a@example.org", "example.com")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("mail is not configured"), "{text}");
    assert!(text.contains("CLOUDRON_MAIL_SMTP_SERVER"), "{text}");
}

#[tokio::test]
async fn an_unreachable_relay_is_an_error_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = Mailer::from_config(&smtp_config(port, false)).unwrap();
    let text = mailer
        .send_test("a@example.org", "example.com")
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[test]
fn a_bad_recipient_or_sender_is_refused_before_sending() {
    let mut config = smtp_config(25, false);
    config.from = "not a mailbox".to_owned();
    assert!(matches!(
        Mailer::from_config(&config),
        Err(MailError::Address {
            what: "email.from",
            ..
        })
    ));
}

#[test]
fn debug_output_never_shows_the_password() {
    let mailer = Mailer::from_config(&smtp_config(25, true)).unwrap();
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("relay-pass"), "{debug}");
}

#[tokio::test]
async fn implicit_tls_and_starttls_build_with_rustls() {
    for mode in [SmtpMode::Tls, SmtpMode::Starttls] {
        let mut config = smtp_config(0, false);
        config.mode = Some(mode);
        config.port = None;
        config.hostname = Some("mail.example.com".to_owned());
        let mailer = Mailer::from_config(&config).unwrap();
        let expected = match mode {
            SmtpMode::Tls => "smtp://mail.example.com:465 (tls)",
            _ => "smtp://mail.example.com:587 (starttls)",
        };
        assert_eq!(mailer.describe(), expected);
    }
}

#[tokio::test]
async fn a_hanging_sendmail_command_is_killed_after_the_timeout() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sendmail");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mailer = Mailer::sendmail(
        script.to_str().unwrap(),
        "noreply@example.com",
        "noreply@example.com",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = mailer
        .send_test("alice@example.com", "example.com")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "it hung");
    assert!(
        matches!(&error, MailError::Sendmail { message, .. } if message.contains("killed")),
        "{error}"
    );
}

#[tokio::test]
async fn a_message_with_html_goes_out_as_text_and_html_alternatives() {
    let (port, seen) = sink().await;
    let mailer = Mailer::from_config(&smtp_config(port, false)).unwrap();
    mailer
        .send(Outgoing {
            to: "bob@example.org".parse().unwrap(),
            subject: "123456 is your code".to_owned(),
            text: "Your code is: 123456".to_owned(),
            html: Some("<p>Your code is: <b>123456</b></p>".to_owned()),
        })
        .await
        .unwrap();
    let data = seen.await.unwrap().data;
    assert!(data.contains("multipart/alternative"), "{data}");
    let text_at = data.find("Content-Type: text/plain").expect("a text part");
    let html_at = data.find("Content-Type: text/html").expect("an HTML part");
    // RFC 2046 §5.1.4: the preferred alternative (HTML) comes last.
    assert!(text_at < html_at, "{data}");
    assert!(data.contains("Your code is: 123456"));
}

#[tokio::test]
async fn a_memory_mailer_keeps_what_it_sends() {
    let (mailer, outbox) = Mailer::memory("Matrix <noreply@example.com>").unwrap();
    assert!(mailer.is_enabled());
    mailer
        .send_test("Admin@Example.org", "example.com")
        .await
        .unwrap();
    let sent = outbox.to("admin@example.org");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].subject,
        "Test email from the Matrix server example.com"
    );
    assert_eq!(sent[0].html, None);
}
