//! Refusals: a page, one warn line, nothing created.

use super::*;

async fn an_unknown_provider_is_a_404_page(db: Database) {
    let (_fake, app) = setup(db).await;
    let log = LogCapture::start();
    let response = app
        .get("/auth/upstream/authorize/01J0000000000000000000SEC0")
        .await;
    assert_page(&response, StatusCode::NOT_FOUND, &["not available"]);
    assert!(
        log.text().contains("reason=\"unknown_provider\""),
        "{}",
        log.text()
    );
    let response = app
        .get("/auth/upstream/callback/01J0000000000000000000SEC0?code=x&state=y")
        .await;
    assert_page(&response, StatusCode::NOT_FOUND, &[]);
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_provider_that_is_down_is_a_502_page(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_down(true);
    let log = LogCapture::start();
    let mut browser = app.browser();
    let response = browser.get(AUTHORIZE).await;
    assert_page(
        &response,
        StatusCode::BAD_GATEWAY,
        &["Fake IdP is not available"],
    );
    log.assert_refusal("provider_unreachable");
    drop(log);
    let sessions = authorization_sessions(&app).await;
    assert_eq!(sessions, 0, "nothing stored before the redirect");

    // Down between the redirect and the callback: the code cannot be exchanged.
    fake.set_down(false);
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);
    fake.set_down(true);
    let log = LogCapture::start();
    let response = browser.get(&callback).await;
    assert_page(
        &response,
        StatusCode::BAD_GATEWAY,
        &["Fake IdP is not available"],
    );
    log.assert_refusal("provider_unreachable");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_cancelled_login_says_so(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set(|knobs| knobs.deny = true);
    assert_login_refused(
        &fake,
        &app,
        StatusCode::BAD_REQUEST,
        &["Sign-in was cancelled", "Fake IdP"],
        "cancelled",
    )
    .await;
    assert_eq!(counts(&app).await, NOTHING);
}

async fn another_provider_error_shows_its_code(db: Database) {
    let (_fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let state = state_of(&provider_url);
    let log = LogCapture::start();
    let response = browser
        .get(&format!(
            "/auth/upstream/callback/{PROVIDER_ID}?error=temporarily_unavailable&error_description=maintenance&state={state}"
        ))
        .await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["temporarily_unavailable"],
    );
    log.assert_refusal("provider_error");
    assert!(log.text().contains("maintenance"), "{}", log.text());
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_provider_error_without_this_browsers_state_is_a_state_mismatch(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let state = state_of(&provider_url);
    let callback = format!("/auth/upstream/callback/{PROVIDER_ID}");
    // A forged link: no state, an unknown state, this browser's state in another browser.
    for (mut who, path) in [
        (
            app.browser(),
            format!("{callback}?error=access_denied&error_description=forged"),
        ),
        (
            app.browser(),
            format!("{callback}?error=access_denied&state=unknown"),
        ),
        (
            app.browser(),
            format!("{callback}?error=temporarily_unavailable&state={state}"),
        ),
        (
            app.browser(),
            format!("{callback}?error=access_denied&state={state}"),
        ),
    ] {
        let log = LogCapture::start();
        let response = who.get(&path).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["not started in this browser"],
        );
        assert!(!response.text().contains("Sign-in was cancelled"), "{path}");
        log.assert_refusal("state_mismatch");
    }
    // The same browser, an unknown state: still a mismatch, not "cancelled".
    let log = LogCapture::start();
    let response = browser
        .get(&format!("{callback}?error=access_denied&state=x{state}"))
        .await;
    assert_page(
        &response,
        StatusCode::BAD_REQUEST,
        &["not started in this browser"],
    );
    log.assert_refusal("state_mismatch");
    drop(log);
    // The real answer still completes the login in this browser.
    let response = browser.get(&approve(&fake, &provider_url)).await;
    location(&response);
    assert_eq!(counts(&app).await.users, 1);
}

async fn a_state_not_started_in_this_browser_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);

    // Another browser (a login CSRF attempt), a tampered state, no state at all.
    let tampered = callback.replace("state=", "state=x");
    let without = format!("/auth/upstream/callback/{PROVIDER_ID}?code=code-0");
    for (mut who, path) in [
        (app.browser(), callback.as_str()),
        (app.browser(), tampered.as_str()),
        (app.browser(), without.as_str()),
    ] {
        let log = LogCapture::start();
        let response = who.get(path).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["not started in this browser"],
        );
        log.assert_refusal("state_mismatch");
    }
    let mut tampered_browser = browser;
    let log = LogCapture::start();
    let response = tampered_browser.get(&tampered).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    log.assert_refusal("state_mismatch");
    assert_eq!(fake.log().token.len(), 0, "no code was exchanged");
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_replayed_callback_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let response = app.get(AUTHORIZE).await;
    let cookies = cookie_header(&response);
    let provider_url: Url = location(&response).parse().unwrap();
    let callback = approve(&fake, &provider_url);
    let send = async |cookies: &str| {
        let request = Request::get(callback.as_str())
            .header(header::COOKIE, cookies)
            .body(Body::empty())
            .unwrap();
        app.request(request).await
    };
    location(&send(&cookies).await);
    let after_first = counts(&app).await;
    assert_eq!(after_first.users, 1);

    // The same answer again, with the cookie as it was before the first use.
    let log = LogCapture::start();
    let response = send(&cookies).await;
    assert_page(&response, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
    drop(log);
    assert_eq!(counts(&app).await, after_first);
    assert_eq!(fake.log().token.len(), 1, "the code was not sent again");

    // The back button: the browser itself replays the provider's redirect.
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    let callback = approve(&fake, &provider_url);
    location(&browser.get(&callback).await);
    let log = LogCapture::start();
    let response = browser.get(&callback).await;
    assert_page(&response, StatusCode::BAD_REQUEST, &["already used"]);
    log.assert_refusal("replayed");
    assert_eq!(fake.log().token.len(), 2);
}

async fn an_id_token_that_does_not_verify_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    type Knob = fn(&mut Knobs);
    let knobs: [(&str, Knob); 5] = [
        ("wrong nonce", |k| k.wrong_nonce = true),
        ("another key", |k| k.other_key = true),
        ("wrong issuer", |k| k.wrong_issuer = true),
        ("wrong audience", |k| k.wrong_audience = true),
        ("expired", |k| k.expired = true),
    ];
    for (name, knob) in knobs {
        fake.set(|k| *k = Knobs::default());
        fake.set(knob);
        let log = LogCapture::start();
        let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
        assert_page(
            &response,
            StatusCode::BAD_REQUEST,
            &["could not verify the answer from Fake IdP"],
        );
        log.assert_refusal("id_token_invalid");
        assert_eq!(counts(&app).await, NOTHING, "{name}");
    }
}

async fn a_refused_code_shows_the_error_code(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set(|k| k.token_error = Some("invalid_grant".to_owned()));
    assert_login_refused(
        &fake,
        &app,
        StatusCode::BAD_REQUEST,
        &["invalid_grant"],
        "token_error",
    )
    .await;
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_missing_required_claim_is_named(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_user(json!({ "sub": "alice", "name": "Alice", "email": "a@example.org", "email_verified": true }));
    assert_login_refused(
        &fake,
        &app,
        StatusCode::BAD_REQUEST,
        &["did not send your username"],
        "missing_claim",
    )
    .await;
    assert_eq!(counts(&app).await, NOTHING);
}

async fn an_invalid_username_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    fake.set_user(json!({ "sub": "alice", "preferred_username": "alice smith!" }));
    assert_login_refused(
        &fake,
        &app,
        StatusCode::BAD_REQUEST,
        &["cannot be used as a Matrix username"],
        "invalid_localpart",
    )
    .await;
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_username_too_long_for_a_matrix_id_is_refused(db: Database) {
    let (fake, app) = setup(db).await;
    let username = "a".repeat(250);
    fake.set_user(json!({ "sub": "alice", "preferred_username": username }));
    assert_login_refused(
        &fake,
        &app,
        StatusCode::BAD_REQUEST,
        &["cannot be used as a Matrix username"],
        "invalid_localpart",
    )
    .await;
    assert_eq!(counts(&app).await, NOTHING);
}

async fn a_taken_username_is_a_conflict_page(db: Database) {
    let (fake, app) = setup(db).await;
    app.user_with_password("alice", "correct horse").await;
    let log = assert_login_refused(
        &fake,
        &app,
        StatusCode::CONFLICT,
        &[
            "\"alice\"",
            "already belongs to an account",
            "administrator of this server can link",
        ],
        "localpart_conflict",
    )
    .await;
    assert!(
        log.text().contains(&format!(
            "mas-cli manage link-upstream alice --provider {PROVIDER_ID} --subject"
        )),
        "the line says how to link: {}",
        log.text()
    );
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            ..NOTHING
        }
    );

    // A name the homeserver knows (an appservice's, an older account) is taken too.
    app.homeserver.reserve_localpart("bob");
    fake.set_user(json!({ "sub": "bob", "preferred_username": "bob" }));
    assert_login_refused(
        &fake,
        &app,
        StatusCode::CONFLICT,
        &["\"bob\""],
        "localpart_conflict",
    )
    .await;
    assert!(user_named(&app, "bob").await.is_none());
    assert_eq!(counts(&app).await.links, 0);
}

async fn the_conflict_log_line_quotes_the_subject_for_the_shell(db: Database) {
    let (fake, app) = setup(db).await;
    app.user_with_password("alice", "correct horse").await;
    fake.set_user(json!({ "sub": "x$(id)'`id`", "preferred_username": "alice" }));
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    log.assert_refusal("localpart_conflict");
    assert!(
        log.text().contains(r"--subject 'x$(id)'\''`id`'"),
        "{}",
        log.text()
    );
}

async fn a_locked_or_deactivated_linked_user_cannot_log_in(db: Database) {
    let (fake, app) = setup(db).await;
    login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    let alice = user_named(&app, "alice").await.unwrap();
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    assert_login_refused(
        &fake,
        &app,
        StatusCode::FORBIDDEN,
        &["locked"],
        "user_locked",
    )
    .await;

    users::unlock_user(&mut conn, alice.id).await.unwrap();
    users::deactivate_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    drop(conn);
    assert_login_refused(
        &fake,
        &app,
        StatusCode::FORBIDDEN,
        &["deactivated"],
        "user_deactivated",
    )
    .await;
    assert_eq!(
        counts(&app).await.browser_sessions,
        1,
        "only the first login's"
    );
}

sqlite_tests!(
    an_unknown_provider_is_a_404_page,
    a_provider_that_is_down_is_a_502_page,
    a_cancelled_login_says_so,
    another_provider_error_shows_its_code,
    a_provider_error_without_this_browsers_state_is_a_state_mismatch,
    a_state_not_started_in_this_browser_is_refused,
    a_replayed_callback_is_refused,
    an_id_token_that_does_not_verify_is_refused,
    a_refused_code_shows_the_error_code,
    a_missing_required_claim_is_named,
    an_invalid_username_is_refused,
    a_username_too_long_for_a_matrix_id_is_refused,
    a_taken_username_is_a_conflict_page,
    the_conflict_log_line_quotes_the_subject_for_the_shell,
    a_locked_or_deactivated_linked_user_cannot_log_in,
);
