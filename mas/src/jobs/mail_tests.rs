//! The mail jobs through the real templates and a memory mailer ([`TestApp`]), on both backends:
//! the code mail's contents, and nothing sent for a code that can no longer be used.

use std::time::Duration;

use crate::app::testing::{SERVER_NAME, TestApp};
use crate::auth::email;
use crate::model::{EMAIL_CODE_LIFETIME_MS, EmailAuthentication, EmailAuthenticationPurpose};
use crate::storage::Database;
use crate::storage::email_authentications::check_email_code;
use crate::storage::testing::test_on_both_backends;

/// Starts a registration's email authentication (code mail queued), committed.
async fn started(app: &TestApp, address: &str) -> EmailAuthentication {
    let mut rng = app.state.rng.fork();
    let mut tx = app.state.db.begin_write().await.unwrap();
    let purpose = EmailAuthenticationPurpose::Registration {
        registration_id: ulid::Ulid::from_parts(1, 2),
    };
    let authentication = email::start(&mut tx, &app.clock, &mut rng, purpose, address)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    authentication
}

async fn the_code_is_mailed_as_text_and_html(db: Database) {
    let app = TestApp::new(db).await;
    let authentication = started(&app, "Carol@Example.org").await;
    assert_eq!(app.run_jobs().await, 1);
    let sent = app.outbox.to("carol@example.org");
    assert_eq!(sent.len(), 1, "{:?}", app.outbox.messages());
    let mail = &sent[0];
    let code = &authentication.code;
    assert_eq!(
        mail.subject,
        format!("{code} is your code for {SERVER_NAME}")
    );
    assert!(
        mail.text.contains(&format!("Your code is: {code}")),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("creating an account"));
    assert!(mail.text.contains("http://localhost:8000/auth/"));
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(html.contains(code.as_str()));
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing is loaded from elsewhere: no images, no style sheets, no scripts.
    for tag in ["<img", "<link", "<script", "url("] {
        assert!(!html.contains(tag), "{tag} in {html}");
    }
}

async fn no_mail_for_a_code_used_or_expired_before_the_job_ran(db: Database) {
    let app = TestApp::new(db).await;
    let used = started(&app, "used@example.org").await;
    let mut conn = app.state.db.acquire().await.unwrap();
    check_email_code(&mut conn, &app.clock, used.id, &used.code)
        .await
        .unwrap();
    drop(conn);
    started(&app, "late@example.org").await;
    app.clock
        .advance(Duration::from_millis(EMAIL_CODE_LIFETIME_MS as u64));
    assert_eq!(app.run_jobs().await, 2);
    assert!(
        app.outbox.messages().is_empty(),
        "{:?}",
        app.outbox.messages()
    );
}

test_on_both_backends!(
    the_code_is_mailed_as_text_and_html,
    no_mail_for_a_code_used_or_expired_before_the_job_ran,
);
