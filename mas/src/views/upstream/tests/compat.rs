//! The compat layer (legacy SSO) in SSO-only mode.

use super::*;

async fn compat_in_sso_only_mode_logs_in_through_the_provider(db: Database) {
    let (fake, app) = setup(db).await;
    let app = without_passwords(app);
    let flows = app.get("/auth/_matrix/client/v3/login").await;
    flows.assert_status(StatusCode::OK);
    let types: Vec<String> = flows.json()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["m.login.sso", "m.login.token"]);

    let refused = app
        .post_json(
            "/auth/_matrix/client/v3/login",
            &json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": "x",
            }),
        )
        .await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["errcode"], "M_UNKNOWN");
    assert_eq!(refused.json()["error"], "password login is disabled");

    // m.login.sso without an idp: continue page → login page → provider → back → continue.
    let mut browser = app.browser();
    let response = browser
        .get("/auth/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb")
        .await;
    let complete = local_path(&location(&response));
    let login = location(&browser.get(&complete).await);
    let response = browser.get(&login).await;
    response.assert_status(StatusCode::FOUND);
    let authorize = response.header("location").unwrap().to_owned();
    assert!(
        authorize.contains("kind=continue_compat_sso_login"),
        "{authorize}"
    );
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(location(&response), complete);
    let page = browser.get(&complete).await;
    let csrf = csrf_of(&page.text());
    let response = browser.post(&complete, &[("csrf", &csrf)]).await;
    let back: Url = location(&response).parse().unwrap();
    assert_eq!(back.host_str(), Some("client.example.com"));
    let token = back
        .query_pairs()
        .find(|(k, _)| k == "loginToken")
        .unwrap()
        .1
        .into_owned();
    let login = app
        .post_json(
            "/auth/_matrix/client/v3/login",
            &json!({ "type": "m.login.token", "token": token }),
        )
        .await;
    login.assert_status(StatusCode::OK);
    assert_eq!(login.json()["user_id"], "@alice:example.com");
    assert!(
        app.homeserver
            .calls()
            .iter()
            .any(|call| matches!(call, MockCall::UpsertDevice(user, _, _) if user == "alice")),
        "device created"
    );
}

sqlite_tests!(compat_in_sso_only_mode_logs_in_through_the_provider,);
