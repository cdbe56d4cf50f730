//! Router-level tests of `/authorize` and the consent page, on both backends: the browser flow
//! from the authorization request to the code, and each error path.

use axum::http::StatusCode;
use ulid::Ulid;

use crate::app::testing::TestApp;
use crate::app::testing::browser::{Browser, csrf_of, hidden_field, location, url_params};
use crate::crypto::sha256_hex;
use crate::homeserver::{MockFailure, MockUser};
use crate::model::{AuthorizationGrant, Client, ClientAuthMethod, GrantStage};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, grants, users};

/// The RFC 7636 example challenge (S256 of `dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk`).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const API_AND_DEVICE: &str = "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";

/// `/auth/authorize?…` with these parameters.
fn authorize_url(params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/auth/authorize?{query}")
}

/// The parameters of a good code request from `client` (public: with PKCE).
fn code_request(client: &Client, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", client.id.to_string()),
        ("redirect_uri", client.metadata.redirect_uris[0].to_string()),
        ("response_type", "code".to_owned()),
        ("scope", scope.to_owned()),
        ("state", "st4te".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

fn with(params: &[(&'static str, String)], changes: &[(&'static str, Option<&str>)]) -> String {
    let mut params: Vec<(&str, String)> = params.to_vec();
    for (name, value) in changes {
        params.retain(|(key, _)| key != name);
        if let Some(value) = value {
            params.push((name, (*value).to_owned()));
        }
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    authorize_url(&pairs)
}

async fn grant(app: &TestApp, id: Ulid) -> AuthorizationGrant {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    grants::find_authorization_grant(&mut conn, id)
        .await
        .unwrap()
        .unwrap()
}

/// The grant id of a `/login?…&id=` or `/consent/{id}` location.
fn grant_id_in(location: &str) -> Ulid {
    if let Some(rest) = location.strip_prefix("/auth/consent/") {
        return rest.parse().unwrap();
    }
    let url = url::Url::parse(&format!("http://x{location}")).unwrap();
    let id = url.query_pairs().find(|(k, _)| k == "id").unwrap().1;
    id.parse().unwrap()
}

/// A logged-in browser of a new user `alice`.
async fn alice(app: &TestApp) -> Browser {
    app.user_with_password("alice", "correct horse").await;
    let mut browser = app.browser();
    browser.login("alice", "correct horse").await;
    browser
}

/// Runs the consent page for `consent_path` and approves; returns the answer to the POST.
async fn approve(browser: &mut Browser, consent_path: &str) -> crate::app::testing::TestResponse {
    let page = browser.get(consent_path).await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    browser
        .post(consent_path, &[("csrf", &csrf), ("action", "approve")])
        .await
}

async fn full_browser_flow_redirects_with_code_and_state_and_fulfils_the_grant(db: Database) {
    let app = TestApp::new(db).await;
    let user = app.user_with_password("alice", "correct horse").await;
    app.homeserver.insert_user(
        "alice",
        MockUser {
            display_name: Some("Alice Liddell".to_owned()),
            ..MockUser::default()
        },
    );
    let client = app.native_test_client().await;
    let mut browser = app.browser();

    let response = browser
        .get(&with(&code_request(&client, API_AND_DEVICE), &[]))
        .await;
    let to_login = location(&response);
    assert!(
        to_login.starts_with("/auth/login?kind=continue_authorization_grant&id="),
        "{to_login}"
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    let grant_id = grant_id_in(&to_login);
    assert_eq!(grant(&app, grant_id).await.stage(), GrantStage::Pending);

    let response = browser.login_at(&to_login, "alice", "correct horse").await;
    let to_consent = location(&response);
    assert_eq!(to_consent, format!("/auth/consent/{grant_id}"));
    assert!(browser.has_cookie("session"));

    let page = browser.get(&to_consent).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    for expected in [
        "Test Client",
        "Alice Liddell",
        "@alice:example.com",
        "ABCDEFGHIJ",
        "Use your account: read and send messages",
        "See your Matrix user ID",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    let csrf = csrf_of(&html);
    let response = browser
        .post(&to_consent, &[("csrf", &csrf), ("action", "approve")])
        .await;
    let back = location(&response);
    assert!(back.starts_with("io.element.app:/callback?"), "{back}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let params = url_params(&back, false);
    assert_eq!(params["state"], "st4te");
    let code = &params["code"];
    assert_eq!(code.len(), 32);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(!params.contains_key("id_token"));

    let stored = grant(&app, grant_id).await;
    assert_eq!(stored.stage(), GrantStage::Fulfilled);
    assert_eq!(stored.authorization_code_sha256, Some(sha256_hex(code)));
    assert!(stored.fulfilled_at.is_some());
    let session_id = stored.user_session_id.unwrap();
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let session =
        crate::storage::browser_sessions::find_active_browser_session(&mut conn, session_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(session.user.id, user.id);
    let auth = crate::storage::browser_sessions::last_authentication(&mut conn, session_id)
        .await
        .unwrap();
    assert!(auth.is_some(), "the login was recorded");

    // The code went out once: the page cannot be used again.
    let again = browser
        .post(&to_consent, &[("csrf", &csrf), ("action", "approve")])
        .await;
    again.assert_status(StatusCode::BAD_REQUEST);
}

async fn a_signed_in_browser_goes_straight_to_consent(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    let response = browser
        .get(&with(&code_request(&client, "openid"), &[]))
        .await;
    let to_consent = location(&response);
    assert!(to_consent.starts_with("/auth/consent/"), "{to_consent}");
}

async fn unknown_client_gets_an_error_page_never_a_redirect(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let good = code_request(&client, "openid");
    for client_id in [None, Some("not-a-ulid"), Some("01J00000000000000000CL1ENT")] {
        let url = with(&good, &[("client_id", client_id)]);
        let response = app.get(&url).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(response.header("location").is_none());
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(response.text().contains("Unknown application"), "{url}");
    }
    // A repeated client_id is an error page too.
    let mut params = good.clone();
    params.push(("client_id", client.id.to_string()));
    let response = app.get(&with(&params, &[])).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert!(response.header("location").is_none());
}

/// RFC 6749 §3.1: a query that is not valid percent-encoded UTF-8 is refused as a whole, on
/// a page (which client sent it cannot be trusted either).
async fn undecodable_queries_get_an_error_page(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let good = with(&code_request(&client, "openid"), &[]);
    for bad in ["&scope=%ff", "&state=%c3", "&nonce=%zz", "&%ff=1"] {
        let response = app.get(&format!("{good}{bad}")).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(response.header("location").is_none(), "{bad}");
        assert!(response.text().contains("could not be read"), "{bad}");
    }
    // Percent-encoded UTF-8 is fine.
    let ok = app.get(&format!("{good}&login_hint=%C3%A9")).await;
    assert!(location(&ok).starts_with("/auth/login?"));
}

async fn bad_redirect_uri_gets_an_error_page_never_a_redirect(db: Database) {
    let app = TestApp::new(db).await;
    let client = app
        .client_with(
            &[
                "https://app.example.com/cb",
                "https://app.example.com/other",
            ],
            ClientAuthMethod::ClientSecretBasic,
        )
        .await;
    let good = code_request(&client, "openid");
    for redirect_uri in [
        Some("https://evil.example.com/cb"),
        Some("https://app.example.com/cb/"),
        Some("https://app.example.com/cb#frag"),
        Some("not a url"),
        None, // several registered: required
    ] {
        let response = app
            .get(&with(&good, &[("redirect_uri", redirect_uri)]))
            .await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert!(response.header("location").is_none(), "{redirect_uri:?}");
        assert!(response.text().contains("<!DOCTYPE html>"));
    }
}

async fn a_single_registered_redirect_uri_is_the_default(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let url = with(
        &code_request(&client, "openid"),
        &[("redirect_uri", None), ("response_type", Some("token"))],
    );
    let back = location(&app.get(&url).await);
    assert!(back.starts_with("io.element.app:/callback#"), "{back}");
}

async fn loopback_redirect_uris_match_any_port(db: Database) {
    let app = TestApp::new(db).await;
    let client = app
        .client_with(
            &["http://127.0.0.1/callback", "http://localhost/cb"],
            ClientAuthMethod::None,
        )
        .await;
    let good = code_request(&client, "openid");
    for uri in [
        "http://127.0.0.1:51234/callback",
        "http://localhost:8123/cb",
    ] {
        let response = app.get(&with(&good, &[("redirect_uri", Some(uri))])).await;
        assert!(location(&response).starts_with("/auth/login?"), "{uri}");
    }
    for uri in [
        "http://127.0.0.1:51234/other",
        "http://[::1]:51234/callback",
    ] {
        let response = app.get(&with(&good, &[("redirect_uri", Some(uri))])).await;
        response.assert_status(StatusCode::BAD_REQUEST);
    }
}

/// Asserts `response` sends `error` back to the client in the query, with the state.
#[track_caller]
fn assert_client_error(response: &crate::app::testing::TestResponse, error: &str) {
    let back = location(response);
    let params = url_params(&back, false);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{back}"
    );
    assert_eq!(params["state"], "st4te", "{back}");
    assert!(params.contains_key("error_description"));
}

/// (Errors before any interaction are redirected for a client from the config; see
/// `registered_clients_get_a_page_with_the_way_back` for the others.)
/// Asserts `response` is the page telling the person that a registered client's request was
/// refused: no redirect, the error named, and the way back to the client with the error and
/// the state (a link for the query mode, the form for `form_post`).
#[track_caller]
fn assert_error_page(response: &crate::app::testing::TestResponse, error: &str, form: bool) {
    response.assert_status(StatusCode::BAD_REQUEST);
    assert!(response.header("location").is_none());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let csp = response.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = response.text().replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(html.contains(&format!("<code>{error}</code>")), "{html}");
    assert!(html.contains("Test Client"), "the client is named: {html}");
    if form {
        assert_eq!(hidden_field(&html, "error").as_deref(), Some(error));
        assert_eq!(hidden_field(&html, "state").as_deref(), Some("st4te"));
    } else {
        let start = html
            .find(r#"href="io.element.app:/callback?"#)
            .expect(&html)
            + 6;
        let end = html[start..].find('"').unwrap() + start;
        let params = url_params(&html[start..end], false);
        assert_eq!(params["error"], error);
        assert_eq!(params["state"], "st4te");
    }
}

async fn registered_clients_get_a_page_with_the_way_back(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let good = code_request(&client, "openid");
    let no_pkce = with(
        &good,
        &[("code_challenge", None), ("code_challenge_method", None)],
    );
    assert_error_page(&app.get(&no_pkce).await, "invalid_request", false);
    let bad_type = with(&good, &[("response_type", Some("x"))]);
    assert_error_page(
        &app.get(&bad_type).await,
        "unsupported_response_type",
        false,
    );
    let bad_scope = with(&good, &[("scope", Some("bad\\scope"))]);
    assert_error_page(&app.get(&bad_scope).await, "invalid_scope", false);
    let form_post = with(
        &good,
        &[
            ("response_type", Some("x")),
            ("response_mode", Some("form_post")),
        ],
    );
    assert_error_page(
        &app.get(&form_post).await,
        "unsupported_response_type",
        true,
    );
    // Answers to prompt=none are redirected (OpenID Connect Core §3.1.2.6).
    let silent = with(&good, &[("prompt", Some("none"))]);
    assert_client_error(&app.get(&silent).await, "login_required");
}

async fn stored_clients_with_unsafe_redirect_uris_are_never_used(db: Database) {
    let app = TestApp::new(db).await;
    // Put straight into the database, as if registered under older rules: the exploit of a
    // client_uri whose host reversed is `javascript`.
    let mut metadata = crate::storage::testing::fixtures::native_client_metadata();
    metadata.client_uri = Some("https://javascript/".parse().unwrap());
    metadata.redirect_uris = vec!["javascript:alert(document.domain)//".parse().unwrap()];
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    let registered =
        crate::storage::clients::add_client(&mut conn, &app.clock, &mut rng, None, metadata, None)
            .await
            .unwrap();
    drop(conn);
    // And a client from an old config, stored before the config was checked.
    let configured = app
        .static_client_with(&["data:text/html,hello"], ClientAuthMethod::None)
        .await;
    for client in [&registered, &configured] {
        for params in [
            vec![("response_mode", "form_post"), ("response_type", "x")],
            vec![("response_type", "code"), ("scope", "openid")],
        ] {
            let mut params = params;
            let id = client.id.to_string();
            params.push(("client_id", &id));
            let response = app.get(&authorize_url(&params)).await;
            response.assert_status(StatusCode::BAD_REQUEST);
            assert!(response.header("location").is_none());
            let html = response.text();
            assert!(html.contains("cannot sign you in"), "{html}");
            assert!(
                !html.contains("javascript:") && !html.contains("data:"),
                "{html}"
            );
            assert!(!html.contains("<form"), "{html}");
            let csp = response.header("content-security-policy").unwrap();
            assert!(csp.contains("form-action 'self';"), "{csp}");
        }
    }
}

/// A public client redirecting to `redirect_uri`, alice's browser, and the consent page of
/// its `form_post` request.
async fn form_post_consent(app: &TestApp, redirect_uri: &str) -> (Client, Browser, String) {
    let client = app
        .client_with(&[redirect_uri], ClientAuthMethod::None)
        .await;
    let mut browser = alice(app).await;
    let url = with(
        &code_request(&client, "openid"),
        &[("response_mode", Some("form_post"))],
    );
    let consent = location(&browser.get(&url).await);
    (client, browser, consent)
}

async fn pages_let_forms_reach_only_the_clients_redirect_target(db: Database) {
    let app = TestApp::new(db).await;
    let (_, mut browser, consent) = form_post_consent(&app, "https://app.example.com/cb").await;
    let page = browser.get(&consent).await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example.com;"),
        "the consent answer redirects there: {csp}"
    );
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));
    let response = approve(&mut browser, &consent).await;
    let csp = response.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example.com;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

async fn public_clients_must_use_pkce_s256(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let good = code_request(&client, "openid");
    let no_pkce = with(
        &good,
        &[("code_challenge", None), ("code_challenge_method", None)],
    );
    assert_client_error(&app.get(&no_pkce).await, "invalid_request");
    let plain = with(&good, &[("code_challenge_method", Some("plain"))]);
    assert_client_error(&app.get(&plain).await, "invalid_request");
    let default_plain = with(&good, &[("code_challenge_method", None)]);
    assert_client_error(&app.get(&default_plain).await, "invalid_request");
    let short = with(&good, &[("code_challenge", Some("abc"))]);
    assert_client_error(&app.get(&short).await, "invalid_request");
    let method_only = with(&good, &[("code_challenge", None)]);
    assert_client_error(&app.get(&method_only).await, "invalid_request");
}

async fn confidential_clients_may_skip_pkce_or_use_plain(db: Database) {
    let app = TestApp::new(db).await;
    let client = app
        .client_with(
            &["https://app.example.com/cb"],
            ClientAuthMethod::ClientSecretBasic,
        )
        .await;
    let good = code_request(&client, "openid");
    let no_pkce = with(
        &good,
        &[("code_challenge", None), ("code_challenge_method", None)],
    );
    assert!(location(&app.get(&no_pkce).await).starts_with("/auth/login?"));
    let plain = with(&good, &[("code_challenge_method", Some("plain"))]);
    let to_login = location(&app.get(&plain).await);
    let stored = grant(&app, grant_id_in(&to_login)).await;
    let challenge = stored.request.code_challenge.unwrap();
    assert_eq!(challenge.method, crate::model::CodeChallengeMethod::Plain);
}

async fn response_types_with_token_are_refused(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let good = code_request(&client, "openid");
    for response_type in [
        "token",
        "code token",
        "id_token token",
        "code id_token token",
    ] {
        let response = app
            .get(&with(&good, &[("response_type", Some(response_type))]))
            .await;
        let back = location(&response);
        let params = url_params(&back, true);
        assert_eq!(params["error"], "unsupported_response_type", "{back}");
        assert_eq!(params["state"], "st4te");
    }
    let response = app
        .get(&with(&good, &[("response_type", Some("none"))]))
        .await;
    assert_client_error(&response, "unsupported_response_type");
    let response = app.get(&with(&good, &[("response_type", None)])).await;
    assert_client_error(&response, "invalid_request");
}

async fn other_request_errors_go_back_to_the_client(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let good = code_request(&client, "openid");
    type Changes<'a> = &'a [(&'static str, Option<&'a str>)];
    let cases: [(Changes<'_>, &str); 7] = [
        (&[("scope", Some("bad\\scope"))], "invalid_scope"),
        (&[("request", Some("eyJ..."))], "request_not_supported"),
        (
            &[("request_uri", Some("https://x/r"))],
            "request_uri_not_supported",
        ),
        (
            &[("registration", Some("{}"))],
            "registration_not_supported",
        ),
        (&[("prompt", Some("none login"))], "invalid_request"),
        (&[("prompt", Some("sideways"))], "invalid_request"),
        (
            &[("response_mode", Some("carrier_pigeon"))],
            "invalid_request",
        ),
    ];
    for (changes, error) in cases {
        assert_client_error(&app.get(&with(&good, changes)).await, error);
    }
    // A repeated parameter other than client_id / redirect_uri.
    let mut params = good.clone();
    params.push(("scope", "email".to_owned()));
    assert_client_error(&app.get(&with(&params, &[])).await, "invalid_request");
    // An ID token in the query is refused.
    let url = with(
        &good,
        &[
            ("response_type", Some("code id_token")),
            ("response_mode", Some("query")),
            ("nonce", Some("n")),
        ],
    );
    assert_client_error(&app.get(&url).await, "invalid_request");
    // A client not registered for the code grant.
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut metadata = crate::storage::testing::fixtures::native_client_metadata();
    metadata.grant_types.authorization_code = false;
    metadata.client_name = Some("Test Client".to_owned());
    let mut rng = app.state.rng.fork();
    let other =
        crate::storage::clients::add_client(&mut conn, &app.clock, &mut rng, None, metadata, None)
            .await
            .unwrap();
    drop(conn);
    let url = with(&code_request(&other, "openid"), &[]);
    assert_error_page(&app.get(&url).await, "unauthorized_client", false);
}

async fn prompt_none_never_passes_silently(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let url = with(
        &code_request(&client, "openid"),
        &[("prompt", Some("none"))],
    );
    assert_client_error(&app.get(&url).await, "login_required");
    let mut browser = alice(&app).await;
    assert_client_error(&browser.get(&url).await, "consent_required");
}

async fn prompt_create_falls_back_to_the_login_page_with_the_hint(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let url = with(
        &code_request(&client, "openid"),
        &[
            ("prompt", Some("create")),
            ("login_hint", Some("mxid:@bob:example.com")),
        ],
    );
    let to_login = location(&app.get(&url).await);
    assert!(
        to_login.contains("login_hint=mxid%3A%40bob%3Aexample.com"),
        "{to_login}"
    );
    let page = app.get(&to_login).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains(r#"value="bob""#), "{}", page.text());
    assert_eq!(
        hidden_field(&page.text(), "kind").as_deref(),
        Some("continue_authorization_grant")
    );
}

async fn prompt_login_asks_a_signed_in_user_to_sign_in_again(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    app.clock.advance(std::time::Duration::from_secs(60));
    let url = with(
        &code_request(&client, "openid"),
        &[("prompt", Some("login"))],
    );
    let to_login = location(&browser.get(&url).await);
    let grant_id = grant_id_in(&to_login);
    // The login page shows the form instead of skipping ahead, and consent sends back to it.
    let page = browser.get(&to_login).await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains(r#"value="alice""#));
    let consent = format!("/auth/consent/{grant_id}");
    assert!(location(&browser.get(&consent).await).starts_with("/auth/login?"));
    let response = browser.login_at(&to_login, "alice", "correct horse").await;
    assert_eq!(location(&response), consent);
    browser.get(&consent).await.assert_status(StatusCode::OK);
}

async fn fragment_mode_puts_the_code_in_the_fragment(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    let url = with(
        &code_request(&client, "openid"),
        &[("response_mode", Some("fragment"))],
    );
    let consent = location(&browser.get(&url).await);
    let back = location(&approve(&mut browser, &consent).await);
    assert!(back.starts_with("io.element.app:/callback#"), "{back}");
    let params = url_params(&back, true);
    assert_eq!(params["code"].len(), 32);
    assert_eq!(params["state"], "st4te");
}

async fn hybrid_flow_returns_a_signed_id_token_with_nonce_and_c_hash(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.static_test_client().await;
    let mut browser = alice(&app).await;
    let missing_nonce = with(
        &code_request(&client, "openid"),
        &[("response_type", Some("code id_token"))],
    );
    let back = location(&browser.get(&missing_nonce).await);
    assert_eq!(url_params(&back, true)["error"], "invalid_request");
    let no_openid = with(
        &code_request(&client, "email"),
        &[("response_type", Some("id_token")), ("nonce", Some("n"))],
    );
    let back = location(&browser.get(&no_openid).await);
    assert_eq!(url_params(&back, true)["error"], "invalid_request");

    let url = with(
        &code_request(&client, "openid"),
        &[
            ("response_type", Some("code id_token")),
            ("nonce", Some("n0nce")),
        ],
    );
    let consent = location(&browser.get(&url).await);
    let back = location(&approve(&mut browser, &consent).await);
    let params = url_params(&back, true);
    let code = &params["code"];
    let claims: crate::crypto::IdTokenClaims =
        crate::crypto::jwt::verify(&app.state.keystore.jwks(), &params["id_token"]).unwrap();
    assert_eq!(claims.iss, app.state.site.issuer);
    assert_eq!(claims.aud, client.id.to_string());
    assert_eq!(claims.nonce.as_deref(), Some("n0nce"));
    assert_eq!(
        claims.c_hash,
        Some(crate::crypto::oidc_hash(
            crate::crypto::JwsAlgorithm::Rs256,
            code
        ))
    );
    assert!(claims.auth_time.is_some());
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let user = users::find_user_by_username(&mut conn, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, user.sub());

    // id_token alone: no code is made or stored.
    let url = with(
        &code_request(&client, "openid"),
        &[
            ("response_type", Some("id_token")),
            ("nonce", Some("n")),
            ("code_challenge", None),
            ("code_challenge_method", None),
        ],
    );
    let consent = location(&browser.get(&url).await);
    let back = location(&approve(&mut browser, &consent).await);
    let params = url_params(&back, true);
    assert!(params.contains_key("id_token") && !params.contains_key("code"));
    let stored = grant(&app, grant_id_in(&consent)).await;
    assert_eq!(stored.stage(), GrantStage::Fulfilled);
    assert_eq!(stored.authorization_code_sha256, None);
}

async fn form_post_renders_a_form_to_the_client_with_a_button(db: Database) {
    let app = TestApp::new(db).await;
    let (client, mut browser, consent) =
        form_post_consent(&app, "https://app.example.com/cb?x=1").await;
    let response = approve(&mut browser, &consent).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let html = response.text().replace("&#x2f;", "/");
    assert!(
        html.contains(r#"<form method="post" action="https://app.example.com/cb?x=1">"#),
        "{html}"
    );
    assert_eq!(hidden_field(&html, "state").as_deref(), Some("st4te"));
    assert_eq!(hidden_field(&html, "code").map(|c| c.len()), Some(32));
    assert!(html.contains("Continue"));
    assert!(!html.contains("<script"));

    // Errors take the same way, on a page that says what went wrong.
    let url = with(
        &code_request(&client, "bad\\scope"),
        &[("response_mode", Some("form_post"))],
    );
    let response = browser.get(&url).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let html = response.text();
    assert_eq!(
        hidden_field(&html, "error").as_deref(),
        Some("invalid_scope")
    );
    assert!(
        html.contains("sent a request that cannot be handled"),
        "{html}"
    );
}

async fn deny_sends_access_denied_and_cancels_the_grant(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    let consent = location(
        &browser
            .get(&with(&code_request(&client, "openid"), &[]))
            .await,
    );
    let csrf = csrf_of(&browser.get(&consent).await.text());
    let response = browser
        .post(&consent, &[("csrf", &csrf), ("action", "deny")])
        .await;
    assert_client_error(&response, "access_denied");
    let stored = grant(&app, grant_id_in(&consent)).await;
    assert_eq!(stored.stage(), GrantStage::Cancelled);
}

async fn consent_forms_without_the_right_csrf_token_are_refused(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    let consent = location(
        &browser
            .get(&with(&code_request(&client, "openid"), &[]))
            .await,
    );
    browser.get(&consent).await.assert_status(StatusCode::OK);
    for form in [
        vec![("action", "approve")],
        vec![("csrf", "wrong"), ("action", "approve")],
    ] {
        let response = browser.post(&consent, &form).await;
        response.assert_status(StatusCode::FORBIDDEN);
        assert!(response.text().contains("This form has expired"));
        assert!(response.header("location").is_none());
    }
    assert_eq!(
        grant(&app, grant_id_in(&consent)).await.stage(),
        GrantStage::Pending
    );
}

async fn consent_without_a_session_goes_to_the_login_page(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let to_login = location(&app.get(&with(&code_request(&client, "openid"), &[])).await);
    let consent = format!("/auth/consent/{}", grant_id_in(&to_login));
    assert!(location(&app.get(&consent).await).starts_with("/auth/login?kind="));
    app.get("/auth/consent/not-a-ulid")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    app.get(&format!("/auth/consent/{}", Ulid::nil()))
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

/// Asserts the consent page (GET and POST) refuses `scope` for `alice` with a policy page
/// that mentions `message`, and leaves the grant pending.
async fn assert_policy_refuses(app: &TestApp, browser: &mut Browser, scope: &str, message: &str) {
    let client = app.native_test_client().await;
    let consent = location(&browser.get(&with(&code_request(&client, scope), &[])).await);
    let page = browser.get(&consent).await;
    page.assert_status(StatusCode::FORBIDDEN);
    let html = page.text().replace("&quot;", "\"");
    assert!(html.contains("This request is not allowed"), "{html}");
    assert!(html.contains(message), "{message}: {html}");
    // POST with a valid token (from another page) is refused the same way.
    let csrf = csrf_of(&browser.get("/auth/").await.text());
    let response = browser
        .post(&consent, &[("csrf", &csrf), ("action", "approve")])
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        grant(app, grant_id_in(&consent)).await.stage(),
        GrantStage::Pending
    );
}

async fn policy_violations_render_the_policy_page(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    for (scope, message) in [
        (
            "openid urn:matrix:client:api:* urn:synapse:admin:*",
            "The scope \"urn:synapse:admin:*\" is not allowed",
        ),
        (
            "urn:matrix:client:api:* urn:matrix:client:device:AAAAAAAAAA \
             urn:matrix:client:device:BBBBBBBBBB",
            "Only one device",
        ),
        (
            "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:device:ABCDEFGHIJ",
            "cannot be mixed",
        ),
        (
            "urn:matrix:client:api:* urn:matrix:client:device:SHORT",
            "The device ID \"SHORT\" is not valid",
        ),
    ] {
        assert_policy_refuses(&app, &mut browser, scope, message).await;
    }
}

async fn admin_scope_is_granted_to_users_who_may_request_it(db: Database) {
    let app = TestApp::new(db).await;
    let mut browser = alice(&app).await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let user = users::find_user_by_username(&mut conn, "alice")
        .await
        .unwrap()
        .unwrap();
    users::set_can_request_admin(&mut conn, user.id, true)
        .await
        .unwrap();
    drop(conn);
    let client = app.native_test_client().await;
    let scope = "openid urn:matrix:client:api:* urn:synapse:admin:*";
    let consent = location(&browser.get(&with(&code_request(&client, scope), &[])).await);
    let response = approve(&mut browser, &consent).await;
    assert!(url_params(&location(&response), false).contains_key("code"));
}

async fn consent_falls_back_to_the_username_when_the_homeserver_fails(db: Database) {
    let app = TestApp::new(db).await;
    let client = app.native_test_client().await;
    let mut browser = alice(&app).await;
    app.homeserver.set_failure(Some(MockFailure::Timeout));
    let consent = location(
        &browser
            .get(&with(&code_request(&client, "openid"), &[]))
            .await,
    );
    let page = browser.get(&consent).await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text().contains("<strong>alice</strong>"),
        "{}",
        page.text()
    );
}

test_on_both_backends!(
    full_browser_flow_redirects_with_code_and_state_and_fulfils_the_grant,
    a_signed_in_browser_goes_straight_to_consent,
    unknown_client_gets_an_error_page_never_a_redirect,
    bad_redirect_uri_gets_an_error_page_never_a_redirect,
    undecodable_queries_get_an_error_page,
    a_single_registered_redirect_uri_is_the_default,
    loopback_redirect_uris_match_any_port,
    registered_clients_get_a_page_with_the_way_back,
    stored_clients_with_unsafe_redirect_uris_are_never_used,
    pages_let_forms_reach_only_the_clients_redirect_target,
    public_clients_must_use_pkce_s256,
    confidential_clients_may_skip_pkce_or_use_plain,
    response_types_with_token_are_refused,
    other_request_errors_go_back_to_the_client,
    prompt_none_never_passes_silently,
    prompt_create_falls_back_to_the_login_page_with_the_hint,
    prompt_login_asks_a_signed_in_user_to_sign_in_again,
    fragment_mode_puts_the_code_in_the_fragment,
    hybrid_flow_returns_a_signed_id_token_with_nonce_and_c_hash,
    form_post_renders_a_form_to_the_client_with_a_button,
    deny_sends_access_denied_and_cancels_the_grant,
    consent_forms_without_the_right_csrf_token_are_refused,
    consent_without_a_session_goes_to_the_login_page,
    policy_violations_render_the_policy_page,
    admin_scope_is_granted_to_users_who_may_request_it,
    consent_falls_back_to_the_username_when_the_homeserver_fails,
);

/// The responder itself never sends a browser to a script or local URI, in any mode, whatever
/// handed it one (defence in depth below the redirect URI rules).
#[tokio::test]
async fn the_responder_refuses_unsafe_targets_in_every_mode() {
    let templates = crate::templates::Templates::load(
        &camino::Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates/mas"),
    )
    .unwrap();
    for uri in [
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
    ] {
        for mode in [
            crate::model::ResponseMode::Query,
            crate::model::ResponseMode::Fragment,
            crate::model::ResponseMode::FormPost,
        ] {
            let callback = super::Callback {
                redirect_uri: uri.parse().unwrap(),
                mode,
                state: Some("s".to_owned()),
                client_name: "Evil".to_owned(),
            };
            let params = vec![("code", "c".to_owned())];
            let refused = callback.respond(&templates, "/auth", params).unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{uri} {mode:?}");
            let refused = callback
                .error_page(&templates, "/auth", "invalid_request", "x")
                .unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{uri} {mode:?}");
        }
    }
}
