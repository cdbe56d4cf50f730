// --- Router-level tests of the pages ---

mod pages {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::StatusCode;

    use crate::app::build_router;
    use crate::app::testing::browser::{Browser, csrf_of, location};
    use crate::app::testing::{TestApp, appliance_listener};
    use crate::config::{HashingAlgorithm, Resource};
    use crate::crypto::passwords::{Hasher, PasswordManager};
    use crate::storage::testing::test_on_both_backends;
    use crate::storage::{Database, browser_sessions, passwords, users};

    async fn login_page_has_a_csrf_token_the_hint_and_no_framing(db: Database) {
        let app = TestApp::new(db).await;
        let mut browser = app.browser();
        let page = browser
            .get("/auth/login?login_hint=%40bob%3Aexample.com")
            .await;
        page.assert_status(StatusCode::OK);
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        let html = page.text();
        assert!(!csrf_of(&html).is_empty());
        assert!(html.contains(r#"value="bob""#), "{html}");
        assert!(browser.has_cookie("csrf"));
        // A query that cannot be read is a page, not a 500.
        let response = browser.get("/auth/login?kind=a&kind=b").await;
        response.assert_status(StatusCode::BAD_REQUEST);
    }

    async fn wrong_or_missing_credentials_are_refused_on_the_form(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser();
        for (username, password) in [("alice", "wrong"), ("nobody", "correct horse")] {
            let response = browser.login_at("/auth/login", username, password).await;
            response.assert_status(StatusCode::FORBIDDEN);
            assert!(response.text().contains("Invalid username or password."));
            assert!(response.text().contains(&format!(r#"value="{username}""#)));
            assert!(!browser.has_cookie("session"));
        }
        let response = browser.login_at("/auth/login", "", "").await;
        response.assert_status(StatusCode::BAD_REQUEST);
        let html = response.text();
        assert!(html.contains("Enter your username.") && html.contains("Enter your password."));
        // A full Matrix ID of this server works as the username.
        let response = browser
            .login_at("/auth/login", "@alice:example.com", "correct horse")
            .await;
        assert_eq!(location(&response), "/auth/");
    }

    async fn locked_and_deactivated_users_are_told_so_after_the_right_password(db: Database) {
        let app = TestApp::new(db).await;
        let user = app.user_with_password("alice", "correct horse").await;
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        users::lock_user(&mut conn, &app.clock, user.id)
            .await
            .unwrap();
        let mut browser = app.browser();
        let response = browser.login_at("/auth/login", "alice", "wrong").await;
        assert!(response.text().contains("Invalid username or password."));
        let response = browser
            .login_at("/auth/login", "alice", "correct horse")
            .await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(response.text().contains("This account is locked."));
        assert!(!browser.has_cookie("session"));

        users::unlock_user(&mut conn, user.id).await.unwrap();
        users::deactivate_user(&mut conn, &app.clock, user.id)
            .await
            .unwrap();
        let response = browser
            .login_at("/auth/login", "alice", "correct horse")
            .await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(
            response
                .text()
                .contains("This account has been deactivated.")
        );
        assert!(!browser.has_cookie("session"));
    }

    async fn login_without_the_right_csrf_token_is_refused(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser();
        browser.get("/auth/login").await;
        for form in [
            vec![("username", "alice"), ("password", "correct horse")],
            vec![
                ("csrf", "forged"),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
        ] {
            let response = browser.post("/auth/login", &form).await;
            response.assert_status(StatusCode::FORBIDDEN);
            assert!(response.text().contains("This form has expired"));
            assert!(!browser.has_cookie("session"));
        }
        // Without the cookie, the page's token alone does not do.
        let csrf = csrf_of(&browser.get("/auth/login").await.text());
        browser.drop_cookie("csrf");
        let response = browser
            .post(
                "/auth/login",
                &[
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", "correct horse"),
                ],
            )
            .await;
        response.assert_status(StatusCode::FORBIDDEN);
    }

    async fn password_attempts_are_rate_limited_per_address_after_the_burst(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser().with_peer("203.0.113.5:40000");
        for _ in 0..3 {
            let response = browser.login_at("/auth/login", "alice", "wrong").await;
            response.assert_status(StatusCode::FORBIDDEN);
        }
        // The fourth is refused before the password is looked at, even the right one.
        let response = browser
            .login_at("/auth/login", "alice", "correct horse")
            .await;
        response.assert_status(StatusCode::TOO_MANY_REQUESTS);
        assert!(
            response
                .text()
                .contains("Too many sign-in attempts. Wait 20 seconds")
        );
        assert_eq!(response.header("retry-after"), Some("20"));
        assert!(!browser.has_cookie("session"));

        // Another address is not affected.
        let mut other = app.browser().with_peer("203.0.113.6:40000");
        other.login("alice", "correct horse").await;

        // One interval later, one more attempt is allowed.
        app.clock.advance(Duration::from_secs(20));
        browser.login("alice", "correct horse").await;
    }

    async fn unknown_users_and_users_without_a_password_cost_one_verification(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        app.user_without_password("bob").await;
        // The router's state shares this manager (and its counter).
        let manager = app.state.passwords.clone().unwrap();
        assert_eq!(manager.verifications(), 0);
        let mut browser = app.browser();
        let mut expected = 0;
        for username in ["nobody", "bob", "alice"] {
            let response = browser.login_at("/auth/login", username, "guess").await;
            response.assert_status(StatusCode::FORBIDDEN);
            assert!(response.text().contains("Invalid username or password."));
            expected += 1;
            assert_eq!(manager.verifications(), expected, "{username}");
        }
    }

    async fn an_old_password_hash_is_upgraded_at_login(db: Database) {
        let app = TestApp::new(db).await;
        let bcrypt = Hasher::new(HashingAlgorithm::Bcrypt, Some(4), None, false).unwrap();
        let old_hash = bcrypt.hash("correct horse", [9; 16]).unwrap();
        let argon2 = Hasher::new(HashingAlgorithm::Argon2id, None, None, false).unwrap();
        let mut state = app.state.clone();
        state.passwords = Some(Arc::new(
            PasswordManager::new([(1, bcrypt), (2, argon2)], 0).unwrap(),
        ));
        let router = build_router(state, &appliance_listener());

        let user = app.user_without_password("alice").await;
        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let mut rng = app.state.rng.fork();
        let old =
            passwords::add_password(&mut conn, &app.clock, &mut rng, user.id, &old_hash, 1, None)
                .await
                .unwrap();

        // The new row must be newer (same-millisecond rows are ordered by their random id).
        app.clock.advance(Duration::from_secs(1));
        let mut browser = Browser::new(router.clone());
        browser.login("alice", "correct horse").await;
        let active = passwords::active_password(&mut conn, user.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(active.version, 2);
        assert_eq!(active.upgraded_from_id, Some(old.id));
        assert!(active.hashed_password.starts_with("$argon2id$"));

        // The new hash works, and is not upgraded again.
        let mut again = Browser::new(router);
        again.login("alice", "correct horse").await;
        let still = passwords::active_password(&mut conn, user.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(still.id, active.id);
    }

    async fn logout_ends_the_browser_session(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser();
        browser.login("alice", "correct horse").await;
        let index = browser.get("/auth/").await;
        index.assert_status(StatusCode::OK);
        assert!(
            index.text().contains("@alice:example.com"),
            "{}",
            index.text()
        );
        let csrf = csrf_of(&index.text());

        let refused = browser.post("/auth/logout", &[("csrf", "nope")]).await;
        refused.assert_status(StatusCode::FORBIDDEN);
        assert!(browser.has_cookie("session"));

        let mut conn = app.state.db.pool().acquire().await.unwrap();
        let user = users::find_user_by_username(&mut conn, "alice")
            .await
            .unwrap()
            .unwrap();
        let response = browser.post("/auth/logout", &[("csrf", &csrf)]).await;
        assert_eq!(location(&response), "/auth/");
        assert!(!browser.has_cookie("session"));
        let active = browser_sessions::finish_all_browser_sessions(&mut conn, &app.clock, user.id)
            .await
            .unwrap();
        assert_eq!(active, 0, "the session was finished by the logout");
        let index = browser.get("/auth/").await;
        assert!(index.text().contains("You are not signed in."));
    }

    async fn index_without_a_session_links_to_the_login_page(db: Database) {
        let app = TestApp::new(db).await;
        let page = app.get("/auth/").await;
        page.assert_status(StatusCode::OK);
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        let html = page.text().replace("&#x2f;", "/");
        assert!(html.contains(r#"href="/auth/login""#), "{html}");
    }

    async fn a_signed_in_login_page_continues_at_once(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser();
        browser.login("alice", "correct horse").await;
        assert_eq!(location(&browser.get("/auth/login").await), "/auth/");
    }

    /// A router serving `dir` as the assets resource (and the usual listener).
    fn assets_router(app: &TestApp, dir: &std::path::Path) -> axum::Router {
        let mut listener = appliance_listener();
        listener.resources.push(Resource::Assets {
            path: camino::Utf8PathBuf::from_path_buf(dir.to_owned()).unwrap(),
        });
        build_router(app.state.clone(), &listener)
    }

    async fn assets_are_served_with_types_and_caching(db: Database) {
        let app = TestApp::new(db).await;
        let repo_assets =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets"));
        let mut browser = Browser::new(assets_router(&app, &repo_assets));
        let css = browser.get("/auth/assets/app.css").await;
        css.assert_status(StatusCode::OK);
        assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
        assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(css.header("x-content-type-options"), Some("nosniff"));
        let etag = css.header("etag").unwrap().to_owned();
        assert_eq!(
            css.body,
            std::fs::read(repo_assets.join("app.css")).unwrap()
        );

        let request = axum::http::Request::get("/auth/assets/app.css")
            .header("if-none-match", &etag)
            .body(axum::body::Body::empty())
            .unwrap();
        let cached = browser.send(request).await;
        cached.assert_status(StatusCode::NOT_MODIFIED);
        assert!(cached.body.is_empty());
        browser
            .get("/auth/assets/missing.css")
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }

    async fn assets_never_leave_their_directory(db: Database) {
        let app = TestApp::new(db).await;
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("assets");
        std::fs::create_dir_all(assets.join("sub")).unwrap();
        std::fs::write(assets.join("ok.css"), "body{}").unwrap();
        std::fs::write(assets.join(".hidden"), "secret").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), assets.join("link.css")).unwrap();
        let mut browser = Browser::new(assets_router(&app, &assets));
        browser
            .get("/auth/assets/ok.css")
            .await
            .assert_status(StatusCode::OK);
        for path in [
            "/auth/assets/../secret.txt",
            "/auth/assets/sub/../../secret.txt",
            "/auth/assets/%2e%2e/secret.txt",
            "/auth/assets/..%2fsecret.txt",
            "/auth/assets/sub%2f..%2f..%2fsecret.txt",
            "/auth/assets/..%5csecret.txt",
            "/auth/assets/%00",
            "/auth/assets/.hidden",
            "/auth/assets/link.css",
            "/auth/assets/sub",
            "/auth/assets/sub/",
            "/auth/assets//etc/passwd",
        ] {
            let response = browser.get(path).await;
            response.assert_status(StatusCode::NOT_FOUND);
            assert!(!response.text().contains("secret"), "{path}");
        }
    }

    async fn malformed_or_huge_requests_get_pages_not_server_errors(db: Database) {
        let app = TestApp::new(db).await;
        let mut browser = app.browser();
        browser.get("/auth/login").await;
        let big = "a".repeat(100 * 1024);
        let response = browser.post("/auth/login", &[("username", &big)]).await;
        response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        assert!(response.text().contains("<!DOCTYPE html>"));
        let send = |body: &'static [u8], content_type: &'static str| {
            axum::http::Request::post("/auth/login")
                .header("content-type", content_type)
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        for (body, content_type) in [
            (
                b"username=\xff\xfe&password=%ff".as_slice(),
                "application/x-www-form-urlencoded",
            ),
            (b"{}".as_slice(), "application/json"),
            (
                b"csrf=a&csrf=b".as_slice(),
                "application/x-www-form-urlencoded",
            ),
        ] {
            let response = browser.send(send(body, content_type)).await;
            assert!(response.status.is_client_error(), "{response:?}");
        }
        for path in [
            "/auth/authorize?client_id=%ff%fe",
            "/auth/authorize?%zz",
            "/auth/consent/%ff",
            "/auth/login?id=%ff&kind=%00",
        ] {
            let response = browser.get(path).await;
            assert!(!response.status.is_server_error(), "{path}: {response:?}");
        }
    }

    /// Page forms and queries are read as strictly as OAuth parameters (RFC 6749 §3.1): even
    /// with the right CSRF token, a repeated field, a bad escape or bytes that are not UTF-8 are
    /// the "Invalid form" page, never a sign-in attempt with a guessed value.
    async fn page_forms_and_queries_are_read_strictly(db: Database) {
        let app = TestApp::new(db).await;
        app.user_with_password("alice", "correct horse").await;
        let mut browser = app.browser();
        let csrf = csrf_of(&browser.get("/auth/login").await.text());
        for body in [
            format!("csrf={csrf}&username=alice&username=bob&password=correct+horse"),
            format!("csrf={csrf}&username=alice&password=correct+horse%ff"),
            format!("csrf={csrf}&username=alice&password=correct+horse%zz"),
            format!("csrf={csrf}&csrf={csrf}&username=alice&password=correct+horse"),
        ] {
            let request = axum::http::Request::post("/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body.clone()))
                .unwrap();
            let response = browser.send(request).await;
            response.assert_status(StatusCode::BAD_REQUEST);
            assert!(response.text().contains("Invalid form"), "{body}");
            assert!(!browser.has_cookie("session"), "{body}");
        }
        for path in [
            "/auth/login?login_hint=%zz",
            "/auth/login?login_hint=a&login_hint=b",
        ] {
            let response = browser.get(path).await;
            response.assert_status(StatusCode::BAD_REQUEST);
            assert!(response.text().contains("Invalid link"), "{path}");
        }
        // The same form, well formed, signs in.
        let response = browser
            .login_at("/auth/login", "alice", "correct horse")
            .await;
        assert_eq!(location(&response), "/auth/");
    }

    test_on_both_backends!(
        page_forms_and_queries_are_read_strictly,
        malformed_or_huge_requests_get_pages_not_server_errors,
        login_page_has_a_csrf_token_the_hint_and_no_framing,
        wrong_or_missing_credentials_are_refused_on_the_form,
        locked_and_deactivated_users_are_told_so_after_the_right_password,
        login_without_the_right_csrf_token_is_refused,
        password_attempts_are_rate_limited_per_address_after_the_burst,
        unknown_users_and_users_without_a_password_cost_one_verification,
        an_old_password_hash_is_upgraded_at_login,
        logout_ends_the_browser_session,
        index_without_a_session_links_to_the_login_page,
        a_signed_in_login_page_continues_at_once,
        assets_are_served_with_types_and_caching,
        assets_never_leave_their_directory,
    );
}
