//! The whole flow: first and later logins, post-auth actions, `form_post`, two tabs.

use super::*;

async fn first_login_creates_the_account_and_a_browser_session(db: Database) {
    let (fake, app) = setup(db).await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    assert!(browser.has_cookie("upstream-oauth2-sessions"));
    assert!(
        provider_url.as_str().starts_with(&fake.issuer),
        "{provider_url}"
    );
    let params: std::collections::HashMap<String, String> =
        provider_url.query_pairs().into_owned().collect();
    assert_eq!(params["redirect_uri"], CALLBACK_URL);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["state"].len(), 32);
    assert!(!params["nonce"].is_empty());

    let callback = approve(&fake, &provider_url);
    let response = browser.get(&callback).await;
    assert_eq!(location(&response), "/auth/");
    assert!(browser.has_cookie("session"));

    let alice = user_named(&app, "alice").await.expect("alice created");
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let link = upstream_links::find_upstream_link_by_subject(&mut conn, PROVIDER_ID, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.user_id, Some(alice.id));
    let emails = crate::storage::emails::list_emails(&mut conn, alice.id)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].email, "alice@example.org");
    assert!(emails[0].confirmed_at.is_some(), "stored as verified");
    let (method,): (Option<String>,) = sqlx::query_as(
        "SELECT upstream_oauth_authorization_session_id FROM user_session_authentications",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(method.is_some(), "authentication recorded as upstream");
    drop(conn);
    assert_eq!(
        jobs(&app).await,
        vec![(
            "provision-user".to_owned(),
            json!({ "user_id": alice.id.to_string(), "set_display_name": "Alice Liddell" })
        )]
    );
    let index = browser.get("/auth/").await;
    index.assert_status(StatusCode::OK);
    assert!(
        index.text().contains("@alice:example.com"),
        "{}",
        index.text()
    );
}

async fn a_later_login_maps_to_the_same_user(db: Database) {
    let (fake, app) = setup(db).await;
    let mut first = app.browser();
    login_through(&fake, &mut first, AUTHORIZE).await;
    let alice = user_named(&app, "alice").await.unwrap();
    // The provider changed the person's name and address: the account stays as it is.
    fake.set_user(json!({
        "sub": "alice", "preferred_username": "alice2", "name": "Alice L.",
        "email": "new@example.org", "email_verified": true,
    }));
    let mut second = app.browser();
    let response = login_through(&fake, &mut second, AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    let index = second.get("/auth/").await;
    assert!(
        index.text().contains("@alice:example.com"),
        "{}",
        index.text()
    );
    assert_eq!(
        counts(&app).await,
        Counts {
            users: 1,
            links: 1,
            emails: 1,
            jobs: 1,
            browser_sessions: 2,
        }
    );
    assert!(user_named(&app, "alice2").await.is_none());
    assert_eq!(user_named(&app, "alice").await.unwrap().id, alice.id);
}

/// A login through the provider with a post-auth action: the legacy SSO redirect naming the
/// provider goes straight to it, and the login ends on the "continue" page.
async fn the_post_auth_action_continues_after_the_login(db: Database) {
    let (fake, app) = setup(db).await;
    let redirect = format!(
        "/auth/_matrix/client/v3/login/sso/redirect/{PROVIDER_ID}?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb"
    );
    let response = app.get(&redirect).await;
    let authorize = local_path(&location(&response));
    assert!(
        authorize.starts_with(&format!("{AUTHORIZE}?kind=continue_compat_sso_login&id=")),
        "{authorize}"
    );
    let login_id = authorize.rsplit('=').next().unwrap().to_owned();
    let mut browser = app.browser();
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(
        location(&response),
        format!("/auth/complete-compat-sso/{login_id}")
    );
    let page = browser.get(&location(&response)).await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text().contains("client.example.com"),
        "{}",
        page.text()
    );
}

/// A device grant's approval page sends a signed-out browser to the login page; a login through
/// the provider from there ends back on the approval page.
async fn a_device_grant_continues_after_the_login(db: Database) {
    use crate::oauth2::device::link::tests::{DEVICE_SCOPE, USER_CODE, device_grant};
    let (fake, app) = setup(db).await;
    let client = app.native_test_client().await;
    let grant = device_grant(&app, &client, DEVICE_SCOPE, USER_CODE).await;
    let device_page = format!("/auth/device/{}", grant.id);
    let mut browser = app.browser();
    let to_login = location(&browser.get(&device_page).await);
    let login_page = browser.get(&to_login).await;
    let authorize = format!(
        "{AUTHORIZE}?kind=continue_device_code_grant&id={}",
        grant.id
    );
    assert!(
        login_page
            .text()
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .contains(&authorize),
        "{}",
        login_page.text()
    );
    let response = login_through(&fake, &mut browser, &authorize).await;
    assert_eq!(location(&response), device_page);
    let page = browser.get(&device_page).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("Sign in on a new device?"));
}

/// An unknown `idp` is ignored (the "continue" page, as before).
async fn an_unknown_idp_in_the_legacy_redirect_is_ignored(db: Database) {
    let (_fake, app) = setup(db).await;
    let response = app
        .get("/auth/_matrix/client/v3/login/sso/redirect/oidc-github?redirectUrl=https%3A%2F%2Fclient.example.com%2Fcb")
        .await;
    let target = local_path(&location(&response));
    assert!(target.starts_with("/auth/complete-compat-sso/"), "{target}");
}

/// `form_post`: the provider's cross-site POST arrives without our cookie; the page re-posts
/// it from our origin, which then completes the login.
async fn form_post_answers_are_completed_after_one_resubmission(db: Database) {
    let (fake, app) = setup_with(db, |provider| {
        provider["response_mode"] = json!("form_post");
    })
    .await;
    let mut browser = app.browser();
    let provider_url = start(&mut browser, AUTHORIZE).await;
    assert!(provider_url.as_str().contains("response_mode=form_post"));
    let callback = fake.approve(&provider_url);
    let fields: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    let path = local_path(callback.as_str());
    let path = path.split('?').next().unwrap().to_owned();
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut cross_site = app.browser();
    let page = cross_site.post(&path, &form).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(html.contains(r#"name="mas_resubmitted""#), "{html}");
    assert!(html.contains("Finish signing in"), "{html}");
    assert!(html.contains("Fake IdP"), "{html}");
    assert_eq!(counts(&app).await, NOTHING);

    let mut resubmitted = form.clone();
    resubmitted.push(("mas_resubmitted", "1"));
    let response = browser.post(&path, &resubmitted).await;
    assert_eq!(location(&response), "/auth/");
    assert!(user_named(&app, "alice").await.is_some());
}

/// Two logins pending in two tabs of one browser, their callbacks arriving together: both
/// end signed in as the one new user.
async fn two_tabs_completing_at_once_create_one_account(db: Database) {
    let (fake, app) = setup(db).await;
    let get = async |path: &str, cookies: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(cookies) = cookies {
            request = request.header(header::COOKIE, cookies);
        }
        app.request(request.body(Body::empty()).unwrap()).await
    };
    let first = get(AUTHORIZE, None).await;
    let cookies = cookie_header(&first);
    let second = get(AUTHORIZE, Some(&cookies)).await;
    let cookies = cookie_header(&second);
    let callbacks = [first, second].map(|response| {
        let provider_url: Url = location(&response).parse().unwrap();
        approve(&fake, &provider_url)
    });
    let (a, b) = tokio::join!(
        get(&callbacks[0], Some(&cookies)),
        get(&callbacks[1], Some(&cookies))
    );
    assert_eq!(location(&a), "/auth/");
    assert_eq!(location(&b), "/auth/");
    let counts = counts(&app).await;
    assert_eq!((counts.users, counts.links, counts.jobs), (1, 1, 1));
}

sqlite_tests!(
    first_login_creates_the_account_and_a_browser_session,
    a_later_login_maps_to_the_same_user,
    the_post_auth_action_continues_after_the_login,
    a_device_grant_continues_after_the_login,
    an_unknown_idp_in_the_legacy_redirect_is_ignored,
    form_post_answers_are_completed_after_one_resubmission,
    two_tabs_completing_at_once_create_one_account,
);
