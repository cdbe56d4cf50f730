//! The confirmation ("create your account") page.

use super::*;

fn with_confirmation(localpart: &'static str) -> impl FnOnce(&mut Value) {
    move |provider| {
        let imports = &mut provider["claims_imports"];
        imports["skip_confirmation"] = json!(false);
        imports["localpart"]["action"] = json!(localpart);
        imports["displayname"]["action"] = json!("suggest");
        imports["email"]["action"] = json!("suggest");
    }
}

/// Logs in until the confirmation page; returns its path.
async fn until_confirmation(fake: &FakeProvider, browser: &mut Browser) -> String {
    let response = login_through(fake, browser, AUTHORIZE).await;
    let page = location(&response);
    assert!(page.starts_with("/auth/upstream/link/"), "{page}");
    page
}

async fn the_confirmation_page_creates_the_account_the_person_chose(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("suggest")).await;
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    assert_eq!(
        counts(&app).await,
        Counts {
            links: 1,
            ..NOTHING
        },
        "only the unbound link"
    );
    let page = browser.get(&page_path).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    for needle in [
        "Fake IdP",
        r#"name="username""#,
        r#"value="alice""#,
        r#"name="import_display_name""#,
        "Alice Liddell",
        r#"name="import_email""#,
        "alice@example.org",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    let csrf = csrf_of(&html);

    // Without the CSRF token, nothing happens.
    browser
        .post(&page_path, &[("username", "bob")])
        .await
        .assert_status(StatusCode::FORBIDDEN);

    let response = browser
        .post(
            &page_path,
            &[
                ("csrf", &csrf),
                ("username", "Bob"),
                ("import_display_name", "on"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/auth/");
    let bob = user_named(&app, "bob")
        .await
        .expect("the chosen name, lower-cased");
    assert!(user_named(&app, "alice").await.is_none());
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            emails: 0,
            jobs: 1,
            browser_sessions: 1,
        },
        "no email: the box was not ticked"
    );
    assert_eq!(links_of(&app, &bob).await, ["alice"]);
    assert_eq!(jobs(&app).await[0].1["set_display_name"], "Alice Liddell");
    assert!(
        browser
            .get("/auth/")
            .await
            .text()
            .contains("@bob:example.com")
    );

    // Used once.
    let log = LogCapture::start();
    let again = browser.get(&page_path).await;
    assert_page(&again, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
}

async fn the_confirmation_page_refuses_bad_or_taken_names_and_other_browsers(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("suggest")).await;
    app.user_with_password("taken", "correct horse").await;
    app.homeserver.reserve_localpart("bridge");
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    let csrf = csrf_of(&browser.get(&page_path).await.text());
    for (name, message) in [
        ("taken", "This username is taken."),
        ("bridge", "This username is taken."),
        ("not valid!", "Use only lower-case letters"),
        ("", "Choose a username."),
    ] {
        let response = browser
            .post(&page_path, &[("csrf", &csrf), ("username", name)])
            .await;
        assert_page(&response, StatusCode::BAD_REQUEST, &[message]);
    }
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            ..NOTHING
        }
    );

    let log = LogCapture::start();
    let response = app.browser().get(&page_path).await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["not started in this browser"],
    );
    log.assert_refusal("state_mismatch");
    drop(log);
    app.browser()
        .get("/auth/upstream/link/01J0000000000000000000SEC0")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // A later login of the same subject reuses the waiting link.
    let mut other = app.browser();
    let second = until_confirmation(&fake, &mut other).await;
    assert_eq!(second, page_path);
    assert_eq!(counts(&app).await.links, 1);
}

async fn a_fixed_username_is_shown_and_created_on_confirmation(db: Database) {
    let (fake, app) = setup_with(db, with_confirmation("require")).await;
    let mut browser = app.browser();
    let page_path = until_confirmation(&fake, &mut browser).await;
    let html = browser.get(&page_path).await.text();
    assert!(html.contains("@alice:example.com"), "{html}");
    assert!(!html.contains(r#"name="username""#), "not editable: {html}");
    let csrf = csrf_of(&html);
    let response = browser
        .post(
            &page_path,
            &[
                ("csrf", csrf.as_str()),
                ("username", "mallory"),
                ("import_email", "on"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/auth/");
    let alice = user_named(&app, "alice")
        .await
        .expect("the provider's name");
    assert!(user_named(&app, "mallory").await.is_none());
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let emails = crate::storage::emails::list_emails(&mut conn, alice.id)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(
        jobs(&app).await,
        vec![(
            "provision-user".to_owned(),
            json!({ "user_id": alice.id.to_string() })
        )],
        "display name not ticked"
    );
}

sqlite_tests!(
    the_confirmation_page_creates_the_account_the_person_chose,
    the_confirmation_page_refuses_bad_or_taken_names_and_other_browsers,
    a_fixed_username_is_shown_and_created_on_confirmation,
);
