use super::*;

#[test]
fn deep_links_understand_prefixed_and_old_action_names() {
    let end = |device: &str| DeepLink::EndDevice(device.to_owned());
    let main = |selected: Option<&str>| DeepLink::Main {
        selected: selected.map(str::to_owned),
    };
    for (action, device, expected) in [
        (
            Some("org.matrix.cross_signing_reset"),
            None,
            DeepLink::CrossSigningReset,
        ),
        (Some("org.matrix.device_delete"), Some("D1"), end("D1")),
        (Some("org.matrix.session_end"), Some("D1"), end("D1")),
        (Some("session_end"), Some("D1"), end("D1")),
        (Some("org.matrix.device_delete"), None, main(None)),
        (Some("org.matrix.device_delete"), Some(""), main(None)),
        (Some("org.matrix.device_view"), Some("D1"), main(Some("D1"))),
        (
            Some("org.matrix.session_view"),
            Some("D1"),
            main(Some("D1")),
        ),
        (Some("session_view"), Some("D1"), main(Some("D1"))),
        (Some("org.matrix.profile"), None, main(None)),
        (Some("profile"), None, main(None)),
        (Some("org.matrix.devices_list"), None, main(None)),
        (Some("org.matrix.sessions_list"), None, main(None)),
        (Some("sessions_list"), Some("D1"), main(None)),
        (Some("org.example.unknown"), Some("D1"), main(None)),
        (None, None, main(None)),
    ] {
        assert_eq!(DeepLink::parse(action, device), expected, "{action:?}");
    }
}

mod pages {
    use axum::http::StatusCode;
    use serde_json::json;

    use crate::app::testing::browser::{Browser, csrf_of, html_unescape, location};
    use crate::app::testing::oauth::{ApiApp, s256};
    use crate::homeserver::{MockCall, MockFailure, MockUser};
    use crate::model::User;
    use crate::storage::testing::test_on_both_backends;
    use crate::storage::{Database, browser_sessions, compat, oauth2_sessions};

    const PASSWORD: &str = "correct horse";

    /// A user with a password, known to the mock homeserver.
    async fn person(app: &ApiApp, username: &str) -> User {
        let user = app.user_with_password(username, PASSWORD).await;
        app.homeserver.insert_user(username, MockUser::default());
        user
    }

    /// An OAuth session of `user` on `device` (Element X's login); returns its access token.
    async fn oauth_login(app: &ApiApp, user: &User, device: &str) -> String {
        let client = app.public_client().await;
        let mut rng = app.state.rng.fork();
        let browser = browser_sessions::start_browser_session(
            &mut *app.conn().await,
            &app.clock,
            &mut rng,
            user,
            None,
            None,
        )
        .await
        .unwrap();
        let scope = format!("openid urn:matrix:client:api:* urn:matrix:client:device:{device}");
        let code = app.fulfilled_grant(&client, &browser, &scope, s256()).await;
        let response = app.exchange(&client, &code).await;
        response.assert_status(StatusCode::OK);
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A legacy password login of `username` on `device`; returns its access token.
    async fn compat_login(app: &ApiApp, username: &str, device: &str) -> String {
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": username },
            "password": PASSWORD,
            "device_id": device,
        });
        let response = app.post_json("/auth/_matrix/client/v3/login", &body).await;
        response.assert_status(StatusCode::OK);
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    async fn is_active(app: &ApiApp, token: &str) -> bool {
        app.introspect(token).await["active"] == json!(true)
    }

    /// A browser signed in as `username`, and the CSRF token of its account page.
    async fn signed_in(app: &ApiApp, username: &str) -> (Browser, String) {
        let mut browser = app.browser();
        browser.login(username, PASSWORD).await;
        let page = browser.get("/auth/account/").await;
        page.assert_status(StatusCode::OK);
        let csrf = csrf_of(&page.text());
        (browser, csrf)
    }

    fn end_path(id: ulid::Ulid) -> String {
        format!("/auth/account/sessions/{id}/end")
    }

    async fn without_a_session_the_page_sends_to_login_and_back_with_the_action(db: Database) {
        let app = ApiApp::new(db).await;
        person(&app, "alice").await;
        let mut browser = app.browser();
        let response = browser.get("/auth/account").await;
        response.assert_status(StatusCode::FOUND);
        assert_eq!(response.header("location"), Some("/auth/account/"));
        let response = browser.get("/auth/account?action=profile").await;
        assert_eq!(
            response.header("location"),
            Some("/auth/account/?action=profile")
        );

        let link = "/auth/account/?action=org.matrix.session_view&device_id=ABCDEFGHIJ";
        for path in [link, "/auth/account/some/deeper/path"] {
            let response = browser.get(path).await;
            response.assert_status(StatusCode::FOUND);
            let login = response.header("location").unwrap();
            assert!(
                login.starts_with("/auth/login?kind=manage_account&id="),
                "{login}"
            );
        }
        let login = browser
            .get(link)
            .await
            .header("location")
            .unwrap()
            .to_owned();
        let response = browser.login_at(&login, "alice", PASSWORD).await;
        assert_eq!(location(&response), link);
        let page = browser.get(link).await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains("@alice:example.com"));
        let page = browser.get("/auth/account/some/deeper/path").await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains("Your account"));
        // Signed in, the login page goes straight on to the account page.
        let response = browser.get(&login).await;
        assert_eq!(location(&response), link);
    }

    async fn the_page_lists_only_the_users_emails_and_sessions(db: Database) {
        let app = ApiApp::new(db).await;
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        oauth_login(&app, &alice, "ALICEPHONE").await;
        compat_login(&app, "alice", "ALICELEGACY").await;
        oauth_login(&app, &bob, "BOBPHONE00").await;
        let mut rng = app.state.rng.fork();
        let mut conn = app.conn().await;
        for (user, address, verified) in [
            (&alice, "alice@example.com", true),
            (&alice, "unverified@example.com", false),
            (&bob, "bob@example.com", true),
        ] {
            crate::storage::emails::add_email(
                &mut conn, &app.clock, &mut rng, user.id, address, verified,
            )
            .await
            .unwrap();
        }
        drop(conn);
        let (mut browser, _) = signed_in(&app, "alice").await;
        let html = html_unescape(&browser.get("/auth/account/").await.text());
        assert!(html.contains("@alice:example.com"), "{html}");
        assert!(html.contains("alice@example.com"));
        assert!(html.contains("unverified@example.com") && html.contains("(not verified)"));
        assert!(!html.contains("bob@example.com"));
        assert!(html.contains("ALICEPHONE") && html.contains("ALICELEGACY"));
        assert!(!html.contains("BOBPHONE00"));
        assert!(html.contains("Sign out of this browser"));
        assert!(html.contains(r#"href="/auth/account/password">Change your password</a>"#));

        // A view link marks the device's session; an unknown action is the main page.
        let html = browser
            .get("/auth/account/?action=org.matrix.device_view&device_id=ALICEPHONE")
            .await
            .text();
        assert_eq!(html.matches(r#"aria-current="true""#).count(), 1, "{html}");
        let page = browser.get("/auth/account/?action=org.example.nope").await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains("ALICELEGACY"));
    }

    async fn signing_out_a_session_ends_it_and_deletes_its_device(db: Database) {
        let app = ApiApp::new(db).await;
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        let oauth_token = oauth_login(&app, &alice, "ALICEPHONE").await;
        let compat_token = compat_login(&app, "alice", "ALICELEGACY").await;
        let bob_token = oauth_login(&app, &bob, "BOBPHONE00").await;
        let mut conn = app.conn().await;
        let oauth_id = oauth2_sessions::list_active_oauth2_sessions(&mut conn, alice.id)
            .await
            .unwrap()[0]
            .id;
        let compat_id = compat::list_active_compat_sessions(&mut conn, alice.id)
            .await
            .unwrap()[0]
            .id;
        let bob_id = oauth2_sessions::list_active_oauth2_sessions(&mut conn, bob.id)
            .await
            .unwrap()[0]
            .id;
        drop(conn);
        let (mut browser, csrf) = signed_in(&app, "alice").await;

        // A forged form is refused and ends nothing.
        let response = browser
            .post(&end_path(oauth_id), &[("csrf", "forged")])
            .await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(is_active(&app, &oauth_token).await);

        // Someone else's session, an unknown one and a malformed id are 404 pages.
        for id in [
            bob_id.to_string(),
            ulid::Ulid::nil().to_string(),
            "x".into(),
        ] {
            let path = format!("/auth/account/sessions/{id}/end");
            let response = browser.post(&path, &[("csrf", &csrf)]).await;
            response.assert_status(StatusCode::NOT_FOUND);
        }
        assert!(is_active(&app, &bob_token).await);
        assert!(app.homeserver.devices("bob").contains("BOBPHONE00"));

        app.homeserver.take_calls();
        for (id, token, device) in [
            (oauth_id, &oauth_token, "ALICEPHONE"),
            (compat_id, &compat_token, "ALICELEGACY"),
        ] {
            assert!(is_active(&app, token).await, "{device}");
            let response = browser.post(&end_path(id), &[("csrf", &csrf)]).await;
            assert_eq!(location(&response), "/auth/account/");
            assert!(!is_active(&app, token).await, "{device}");
            assert!(!app.homeserver.devices("alice").contains(device));
            let deleted = MockCall::DeleteDevice("alice".to_owned(), device.to_owned());
            assert!(app.homeserver.calls().contains(&deleted), "{device}");
            // Ended once: a second sign-out is a 404.
            let response = browser.post(&end_path(id), &[("csrf", &csrf)]).await;
            response.assert_status(StatusCode::NOT_FOUND);
        }
        let html = browser.get("/auth/account/").await.text();
        assert!(!html.contains("ALICEPHONE") && !html.contains("ALICELEGACY"));
        assert!(is_active(&app, &bob_token).await);
    }

    async fn device_delete_links_ask_for_confirmation_first(db: Database) {
        let app = ApiApp::new(db).await;
        let alice = person(&app, "alice").await;
        let token = oauth_login(&app, &alice, "ALICEPHONE").await;
        let (mut browser, _) = signed_in(&app, "alice").await;
        for action in [
            "org.matrix.device_delete",
            "org.matrix.session_end",
            "session_end",
        ] {
            let path = format!("/auth/account/?action={action}&device_id=ALICEPHONE");
            let page = browser.get(&path).await;
            page.assert_status(StatusCode::OK);
            let html = html_unescape(&page.text());
            assert!(html.contains("Sign out device"), "{action}: {html}");
            assert!(html.contains("/auth/account/sessions/"), "{action}");
        }
        assert!(is_active(&app, &token).await, "nothing ends on GET");
        let page = browser
            .get("/auth/account/?action=org.matrix.device_delete&device_id=NOSUCHDEV0")
            .await;
        page.assert_status(StatusCode::OK);
        assert!(
            page.text()
                .contains("No app is signed in on device NOSUCHDEV0.")
        );
    }

    async fn cross_signing_reset_asks_the_homeserver_and_a_failure_is_an_error_page(db: Database) {
        let app = ApiApp::new(db).await;
        person(&app, "alice").await;
        let (mut browser, _) = signed_in(&app, "alice").await;
        let page = browser
            .get("/auth/account/?action=org.matrix.cross_signing_reset")
            .await;
        page.assert_status(StatusCode::OK);
        let html = page.text();
        assert!(html.contains("Reset your identity?"), "{html}");
        let csrf = csrf_of(&html);
        let path = "/auth/account/cross-signing-reset";

        let response = browser.post(path, &[("csrf", "forged")]).await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(
            !app.homeserver
                .user("alice")
                .unwrap()
                .cross_signing_reset_allowed
        );

        app.homeserver.set_failure(Some(MockFailure::ServerError));
        let response = browser.post(path, &[("csrf", &csrf)]).await;
        response.assert_status(StatusCode::BAD_GATEWAY);
        assert!(response.text().contains("Identity reset not available"));
        app.homeserver.set_failure(None);

        let response = browser.post(path, &[("csrf", &csrf)]).await;
        response.assert_status(StatusCode::OK);
        assert!(response.text().contains("within 10 minutes"));
        assert!(
            app.homeserver
                .user("alice")
                .unwrap()
                .cross_signing_reset_allowed
        );
        let call = MockCall::AllowCrossSigningReset("alice".to_owned());
        assert_eq!(
            app.homeserver
                .calls()
                .iter()
                .filter(|c| **c == call)
                .count(),
            2
        );
    }

    test_on_both_backends!(
        without_a_session_the_page_sends_to_login_and_back_with_the_action,
        the_page_lists_only_the_users_emails_and_sessions,
        signing_out_a_session_ends_it_and_deletes_its_device,
        device_delete_links_ask_for_confirmation_first,
        cross_signing_reset_asks_the_homeserver_and_a_failure_is_an_error_page,
    );
}
