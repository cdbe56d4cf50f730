//! The `authorization_code` grant through the real router, on both backends; the PKCE
//! rules as plain unit tests.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};

use crate::app::testing::browser::{Browser, csrf_of, location, url_params};
use crate::app::testing::oauth::{
    AliceCode, ApiApp, CHALLENGE, DEVICE, MATRIX_SCOPE, REDIRECT_URI, VERIFIER, basic, path, s256,
};
use crate::app::testing::{TestResponse, form_request};
use crate::crypto::jwt::verify;
use crate::crypto::{IdTokenClaims, JwsAlgorithm, oidc_hash};
use crate::homeserver::{MockCall, MockFailure};
use crate::model::{Client, ClientAuthMethod, CodeChallenge, CodeChallengeMethod};
use crate::oauth2::token::tests::error_of;
use crate::routes;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, browser_sessions, users};

use super::verify_pkce;

/// An owned form.
type Form = Vec<(&'static str, String)>;

async fn code_exchange_issues_tokens_an_id_token_and_the_device_first(db: Database) {
    let app = ApiApp::new(db).await;
    let AliceCode {
        user, client, code, ..
    } = app.alice_code(MATRIX_SCOPE).await;
    app.clock.advance(Duration::from_secs(3));
    let response = app.exchange(&client, &code).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("pragma"), Some("no-cache"));
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64(), "{body}");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], MATRIX_SCOPE);
    let access = body["access_token"].as_str().unwrap();
    assert!(access.starts_with("mat_"));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("mar_"));

    let id_token = body["id_token"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &crate::crypto::jwk::unb64(id_token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: IdTokenClaims = verify(&app.state.keystore.jwks(), id_token).unwrap();
    assert_eq!(claims.iss, "http://localhost:8000/auth/");
    assert_eq!(claims.sub, user.sub());
    assert_eq!(claims.aud, client.id.to_string());
    assert_eq!(claims.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(claims.exp - claims.iat, 3600);
    // The login happened 3 s before the exchange.
    assert_eq!(claims.auth_time, Some(claims.iat - 3));
    assert_eq!(
        claims.at_hash.as_deref(),
        Some(oidc_hash(JwsAlgorithm::Rs256, access).as_str())
    );

    assert_eq!(
        app.homeserver.calls(),
        [MockCall::UpsertDevice(
            "alice".to_owned(),
            DEVICE.to_owned(),
            Some("Element X".to_owned())
        )]
    );
    assert!(app.homeserver.devices("alice").contains(DEVICE));
    assert_eq!(app.introspect(access).await["active"], true);
}

async fn an_unknown_user_is_provisioned_before_its_device(db: Database) {
    let app = ApiApp::new(db).await;
    let mut rng = app.state.rng.fork();
    // Stored in MAS only: the mock homeserver does not know bob.
    let user = users::add_user(&mut *app.conn().await, &app.clock, &mut rng, "bob")
        .await
        .unwrap();
    let client = app.public_client().await;
    let browser = app.login(&user).await;
    let code = app
        .fulfilled_grant(&client, &browser, MATRIX_SCOPE, s256())
        .await;
    app.exchange(&client, &code)
        .await
        .assert_status(StatusCode::OK);
    let calls = app.homeserver.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(matches!(&calls[0], MockCall::UpsertDevice(..)));
    assert!(matches!(&calls[1], MockCall::ProvisionUser(request) if request.localpart == "bob"));
    assert!(matches!(&calls[2], MockCall::UpsertDevice(..)));
    assert!(app.homeserver.devices("bob").contains(DEVICE));
}

async fn a_homeserver_failure_is_503_and_creates_nothing(db: Database) {
    let app = ApiApp::new(db).await;
    let AliceCode {
        user, client, code, ..
    } = app.alice_code(MATRIX_SCOPE).await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let response = app.exchange(&client, &code).await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_of(&response), "temporarily_unavailable");
    let sessions = crate::storage::oauth2_sessions::list_active_oauth2_sessions(
        &mut *app.conn().await,
        user.id,
    )
    .await
    .unwrap();
    assert!(sessions.is_empty());
    // Nothing was consumed: the same code works once Synapse is back.
    app.homeserver.set_failure(None);
    app.exchange(&client, &code)
        .await
        .assert_status(StatusCode::OK);
}

async fn a_scope_without_device_or_openid_gets_no_id_token_and_no_upsert(db: Database) {
    let app = ApiApp::new(db).await;
    let (_, _, tokens) = app.logged_in("alice", "urn:matrix:client:api:*").await;
    assert!(tokens.body.get("id_token").is_none());
    assert!(app.homeserver.calls().is_empty());
}

async fn code_exchange_errors_are_rfc6749_json(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let client = app.public_client().await;
    let other = app.public_client().await;
    let browser = app.login(&user).await;
    let id = client.id.to_string();
    let other_id = other.id.to_string();

    let code = app
        .fulfilled_grant(&client, &browser, "openid", s256())
        .await;
    let base = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("client_id", id.clone()),
            ("code_verifier", VERIFIER.to_owned()),
        ]
    };
    let send = |form: Form| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.token(&pairs).await
        }
    };
    let cases: Vec<(&str, Form, StatusCode, &str)> = vec![
        (
            "unknown code",
            base("A".repeat(32).as_str()),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "missing code",
            base(&code)
                .into_iter()
                .filter(|(k, _)| *k != "code")
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "other client",
            base(&code)
                .into_iter()
                .map(|(k, v)| {
                    if k == "client_id" {
                        (k, other_id.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "wrong redirect_uri",
            base(&code)
                .into_iter()
                .map(|(k, v)| {
                    if k == "redirect_uri" {
                        (k, "io.element.app:/other".to_owned())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "missing verifier",
            base(&code)
                .into_iter()
                .filter(|(k, _)| *k != "code_verifier")
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong verifier",
            base(&code)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_verifier" {
                        (k, "x".repeat(43))
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "malformed verifier",
            base(&code)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_verifier" {
                        (k, "short".to_owned())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (name, form, status, error) in cases {
        let response = send(form).await;
        assert_eq!(response.status, status, "{name}: {}", response.text());
        assert_eq!(error_of(&response), error, "{name}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{name}");
    }
    // None of the failures consumed the code.
    app.exchange(&client, &code)
        .await
        .assert_status(StatusCode::OK);

    // A public client without PKCE, or with `plain`.
    for challenge in [
        None,
        Some(CodeChallenge {
            challenge: VERIFIER.to_owned(),
            method: CodeChallengeMethod::Plain,
        }),
    ] {
        let code = app
            .fulfilled_grant(&client, &browser, "openid", challenge)
            .await;
        let response = app.exchange(&client, &code).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&response), "invalid_grant");
    }
    // A verifier for a grant that had no challenge (a confidential client).
    let confidential = app
        .confidential_client(ClientAuthMethod::ClientSecretPost, "s3cret")
        .await;
    let code = app
        .fulfilled_grant(&confidential, &browser, "openid", None)
        .await;
    let confidential_id = confidential.id.to_string();
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/cb"),
            ("client_id", &confidential_id),
            ("client_secret", "s3cret"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_request");
}

async fn expired_codes_ended_browser_sessions_and_locked_users_are_refused(db: Database) {
    let app = ApiApp::new(db).await;
    let AliceCode {
        user,
        client,
        browser,
        code,
    } = app.alice_code("openid").await;
    app.clock.advance(Duration::from_secs(600));
    app.exchange(&client, &code)
        .await
        .assert_status(StatusCode::OK);

    let code = app
        .fulfilled_grant(&client, &browser, "openid", s256())
        .await;
    app.clock.advance(Duration::from_secs(601));
    let response = app.exchange(&client, &code).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_grant");

    let code = app
        .fulfilled_grant(&client, &browser, "openid", s256())
        .await;
    users::lock_user(&mut *app.conn().await, &app.clock, user.id)
        .await
        .unwrap();
    let response = app.exchange(&client, &code).await;
    assert_eq!(error_of(&response), "invalid_grant");
    users::unlock_user(&mut *app.conn().await, user.id)
        .await
        .unwrap();

    browser_sessions::finish_browser_session(&mut *app.conn().await, &app.clock, browser.id)
        .await
        .unwrap();
    let response = app.exchange(&client, &code).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_grant");
}

async fn a_replayed_code_after_20_seconds_ends_the_first_session(db: Database) {
    let app = ApiApp::new(db).await;
    let AliceCode { client, code, .. } = app.alice_code(MATRIX_SCOPE).await;
    let first = app.exchange(&client, &code).await;
    first.assert_status(StatusCode::OK);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();

    // Within 20 s: refused, but the first session lives on (a double submit).
    app.clock.advance(Duration::from_secs(20));
    let replay = app.exchange(&client, &code).await;
    replay.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&replay), "invalid_grant");
    assert_eq!(app.introspect(&access).await["active"], true);

    // Later: the code is presumed stolen, the session it created is ended.
    app.clock.advance(Duration::from_secs(1));
    let replay = app.exchange(&client, &code).await;
    assert_eq!(error_of(&replay), "invalid_grant");
    assert_eq!(
        app.introspect(&access).await,
        serde_json::json!({"active": false})
    );
    assert!(app.homeserver.calls().contains(&MockCall::DeleteDevice(
        "alice".to_owned(),
        DEVICE.to_owned()
    )));
    assert!(!app.homeserver.devices("alice").contains(DEVICE));
}

/// The code exchange form of the public `client` with [`VERIFIER`], and `redirect_uri` if
/// given.
fn code_form(client: &Client, code: &str, redirect_uri: Option<&str>) -> Form {
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("client_id", client.id.to_string()),
        ("code_verifier", VERIFIER.to_owned()),
    ];
    if let Some(uri) = redirect_uri {
        form.push(("redirect_uri", uri.to_owned()));
    }
    form
}

async fn token_form(app: &ApiApp, form: &Form) -> TestResponse {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.token(&pairs).await
}

async fn a_code_whose_request_carried_redirect_uri_needs_the_same_one(db: Database) {
    let app = ApiApp::new(db).await;
    let AliceCode { client, code, .. } = app.alice_code("openid").await;
    // The fixture's grant, like Element X's request, carried `redirect_uri`.

    // RFC 6749 §4.1.3: missing, or not identical, is `invalid_grant`.
    let response = token_form(&app, &code_form(&client, &code, None)).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_grant");
    let description = response.json()["error_description"].to_string();
    assert!(description.contains("redirect_uri"), "{description}");
    assert!(description.contains("required"), "{description}");
    for other in [
        "io.element.app:/other",
        "io.element.app:/callback/",
        "io.element.app:/callback?x=1",
        "not a uri",
    ] {
        let response = token_form(&app, &code_form(&client, &code, Some(other))).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&response), "invalid_grant", "{other}");
    }
    // Neither consumed the code: the identical one gets the tokens.
    let response = token_form(&app, &code_form(&client, &code, Some(REDIRECT_URI))).await;
    response.assert_status(StatusCode::OK);
    assert!(response.json()["access_token"].is_string());
}

/// Runs `/authorize` (with `redirect_uri` or without) and the consent page for `client` in
/// a browser where alice is signed in; returns the code.
async fn code_from_the_browser(
    browser: &mut Browser,
    client: &Client,
    redirect_uri: Option<&str>,
) -> String {
    let client_id = client.id.to_string();
    let mut params = vec![
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st4te"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    if let Some(uri) = redirect_uri {
        params.push(("redirect_uri", uri));
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let consent = location(&browser.get(&format!("/auth/authorize?{query}")).await);
    assert!(consent.starts_with("/auth/consent/"), "{consent}");
    let page = browser.get(&consent).await;
    page.assert_status(StatusCode::OK);
    let csrf = csrf_of(&page.text());
    let back = location(
        &browser
            .post(&consent, &[("csrf", &csrf), ("action", "approve")])
            .await,
    );
    assert!(back.starts_with(REDIRECT_URI), "{back}");
    url_params(&back, false)["code"].clone()
}

async fn redirect_uri_is_required_only_if_the_authorization_request_carried_it(db: Database) {
    let app = ApiApp::new(db).await;
    app.user_with_password("alice", "correct horse").await;
    let client = app.native_test_client().await;
    assert_eq!(client.metadata.redirect_uris[0].as_str(), REDIRECT_URI);
    let mut browser = app.browser();
    browser.login("alice", "correct horse").await;

    // Given at /authorize: required at the token endpoint.
    let code = code_from_the_browser(&mut browser, &client, Some(REDIRECT_URI)).await;
    let response = token_form(&app, &code_form(&client, &code, None)).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_grant");
    token_form(&app, &code_form(&client, &code, Some(REDIRECT_URI)))
        .await
        .assert_status(StatusCode::OK);

    // Left out (the single registered URI was used): optional, but checked when given.
    let code = code_from_the_browser(&mut browser, &client, None).await;
    let response = token_form(
        &app,
        &code_form(&client, &code, Some("io.element.app:/other")),
    )
    .await;
    assert_eq!(error_of(&response), "invalid_grant");
    token_form(&app, &code_form(&client, &code, None))
        .await
        .assert_status(StatusCode::OK);
    let code = code_from_the_browser(&mut browser, &client, None).await;
    token_form(&app, &code_form(&client, &code, Some(REDIRECT_URI)))
        .await
        .assert_status(StatusCode::OK);
}

async fn confidential_clients_may_use_plain_pkce_and_basic_auth(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let browser = app.login(&user).await;
    let client = app
        .confidential_client(ClientAuthMethod::ClientSecretBasic, "s3cret")
        .await;
    let challenge = CodeChallenge {
        challenge: VERIFIER.to_owned(),
        method: CodeChallengeMethod::Plain,
    };
    let code = app
        .fulfilled_grant(&client, &browser, "openid", Some(challenge))
        .await;
    let mut request = form_request(
        Method::POST,
        &path(routes::OAUTH2_TOKEN),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", VERIFIER),
        ],
    );
    request.headers_mut().insert(
        header::AUTHORIZATION,
        basic(&client.id.to_string(), "s3cret").parse().unwrap(),
    );
    app.request(request).await.assert_status(StatusCode::OK);
}

test_on_both_backends!(
    code_exchange_issues_tokens_an_id_token_and_the_device_first,
    an_unknown_user_is_provisioned_before_its_device,
    a_homeserver_failure_is_503_and_creates_nothing,
    a_scope_without_device_or_openid_gets_no_id_token_and_no_upsert,
    code_exchange_errors_are_rfc6749_json,
    expired_codes_ended_browser_sessions_and_locked_users_are_refused,
    a_replayed_code_after_20_seconds_ends_the_first_session,
    a_code_whose_request_carried_redirect_uri_needs_the_same_one,
    redirect_uri_is_required_only_if_the_authorization_request_carried_it,
    confidential_clients_may_use_plain_pkce_and_basic_auth,
);

/// A PKCE challenge (the shared [`VERIFIER`] and [`CHALLENGE`] are RFC 7636 appendix B's).
fn challenge(method: CodeChallengeMethod, value: &str) -> CodeChallenge {
    CodeChallenge {
        challenge: value.to_owned(),
        method,
    }
}

#[test]
fn s256_matches_the_rfc_example() {
    let c = challenge(CodeChallengeMethod::S256, CHALLENGE);
    assert!(verify_pkce(true, Some(&c), Some(VERIFIER)).is_ok());
    let other = format!("{}x", &VERIFIER[..VERIFIER.len() - 1]);
    assert_eq!(
        verify_pkce(true, Some(&c), Some(&other)).unwrap_err().error,
        "invalid_grant"
    );
}

#[test]
fn public_clients_need_s256() {
    assert_eq!(
        verify_pkce(true, None, None).unwrap_err().error,
        "invalid_grant"
    );
    let plain = challenge(CodeChallengeMethod::Plain, VERIFIER);
    assert_eq!(
        verify_pkce(true, Some(&plain), Some(VERIFIER))
            .unwrap_err()
            .error,
        "invalid_grant"
    );
    assert!(verify_pkce(false, Some(&plain), Some(VERIFIER)).is_ok());
    assert!(verify_pkce(false, None, None).is_ok());
}

#[test]
fn a_verifier_without_challenge_or_the_reverse_is_a_bad_request() {
    let c = challenge(CodeChallengeMethod::S256, CHALLENGE);
    assert_eq!(
        verify_pkce(false, None, Some(VERIFIER)).unwrap_err().error,
        "invalid_request"
    );
    assert_eq!(
        verify_pkce(true, Some(&c), None).unwrap_err().error,
        "invalid_request"
    );
    assert_eq!(
        verify_pkce(true, Some(&c), Some("short"))
            .unwrap_err()
            .error,
        "invalid_request"
    );
}
