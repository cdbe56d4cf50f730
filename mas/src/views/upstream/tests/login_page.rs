//! The login page: a button per provider, and the SSO-only redirect.

use super::*;

async fn the_login_page_shows_a_button_per_provider_next_to_the_form(db: Database) {
    let (_fake, app) = setup(db).await;
    let response = app
        .get("/auth/login?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
        .await;
    response.assert_status(StatusCode::OK);
    let html = response.text().replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(html.contains(r#"name="password""#), "{html}");
    assert!(html.contains("Continue with Fake IdP"), "{html}");
    assert!(
        html.contains(&format!(
            r#"href="{AUTHORIZE}?kind=continue_authorization_grant&id=01J0000000000000000000GRNT""#
        )),
        "{html}"
    );
}

async fn sso_only_login_goes_straight_to_the_provider(db: Database) {
    let (fake, app) = setup(db).await;
    let app = without_passwords(app);
    let response = app
        .get("/auth/login?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
        .await;
    response.assert_status(StatusCode::FOUND);
    assert_eq!(
        response.header("location"),
        Some(
            format!("{AUTHORIZE}?kind=continue_authorization_grant&id=01J0000000000000000000GRNT")
                .as_str()
        )
    );
    let response = app.get("/auth/login").await;
    response.assert_status(StatusCode::FOUND);
    assert_eq!(response.header("location"), Some(AUTHORIZE));

    // The whole way from the login page.
    let mut browser = app.browser();
    let response = browser.get("/auth/login").await;
    let authorize = response.header("location").unwrap().to_owned();
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(location(&response), "/auth/");
}

async fn sso_only_with_two_providers_shows_both_buttons(db: Database) {
    let fake = FakeProvider::start().await;
    let mut second = fake.provider_config();
    second.id = "01J0000000000000000000SEC0".to_owned();
    second.human_name = Some("Second IdP".to_owned());
    let config = UpstreamOAuth2Config {
        providers: vec![fake.provider_config(), second],
    };
    let app = TestApp::with_upstream(db, fake.clock.clone(), &config).await;
    let app = without_passwords(app);
    let response = app.get("/auth/login").await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(html.contains("Continue with Fake IdP"), "{html}");
    assert!(html.contains("Continue with Second IdP"), "{html}");
    assert!(!html.contains(r#"name="password""#), "{html}");
}

sqlite_tests!(
    the_login_page_shows_a_button_per_provider_next_to_the_form,
    sso_only_login_goes_straight_to_the_provider,
    sso_only_with_two_providers_shows_both_buttons,
);
