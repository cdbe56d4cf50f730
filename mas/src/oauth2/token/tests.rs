//! `POST /oauth2/token` through the real router, on both backends.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};

use crate::app::testing::browser::{Browser, csrf_of, location, url_params};
use crate::app::testing::oauth::{
    AliceCode, ApiApp, CHALLENGE, DEVICE, MATRIX_SCOPE, REDIRECT_URI, Tokens, VERIFIER, basic,
    path, s256,
};
use crate::app::testing::{appliance_listener, form_request};
use crate::app::{SiteConfig, build_router};
use crate::crypto::jwt::verify;
use crate::crypto::sha256_hex;
use crate::crypto::{IdTokenClaims, JwsAlgorithm, oidc_hash};
use crate::homeserver::{MockCall, MockFailure};
use crate::model::{
    Client, ClientAuthMethod, CodeChallenge, CodeChallengeMethod, RefreshToken, Session,
};
use crate::routes;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{
    Database, access_tokens, browser_sessions, oauth2_sessions, refresh_tokens, users,
};

/// An owned form.
type Form = Vec<(&'static str, String)>;

fn error_of(response: &crate::app::testing::TestResponse) -> String {
    response.json()["error"].as_str().unwrap().to_owned()
}

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

async fn token_form(app: &ApiApp, form: &Form) -> crate::app::testing::TestResponse {
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

async fn client_authentication_failures_are_invalid_client(db: Database) {
    let app = ApiApp::new(db).await;
    let public = app.public_client().await;
    let basic_client = app
        .confidential_client(ClientAuthMethod::ClientSecretBasic, "s3cret")
        .await;
    let post_client = app
        .confidential_client(ClientAuthMethod::ClientSecretPost, "s3cret")
        .await;
    let public_id = public.id.to_string();
    let basic_id = basic_client.id.to_string();
    let post_id = post_client.id.to_string();
    let unknown = ulid::Ulid::nil().to_string();

    let form_cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no client", vec![("grant_type", "client_credentials")]),
        (
            "unknown client",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &unknown),
            ],
        ),
        (
            "not a ulid",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "elementx"),
            ],
        ),
        (
            "public client with a secret",
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", &public_id),
                ("client_secret", "x"),
            ],
        ),
        (
            "secret client without secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &post_id),
            ],
        ),
        (
            "wrong secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &post_id),
                ("client_secret", "wrong"),
            ],
        ),
        (
            "basic client using post",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &basic_id),
                ("client_secret", "s3cret"),
            ],
        ),
    ];
    for (name, form) in form_cases {
        let response = app.token(&form).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            response.text()
        );
        assert_eq!(error_of(&response), "invalid_client", "{name}");
        assert_eq!(response.header("www-authenticate"), Some("Basic"), "{name}");
    }

    let with_basic = |value: String, form: &[(&str, &str)]| {
        let mut request = form_request(Method::POST, &path(routes::OAUTH2_TOKEN), form);
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, value.parse().unwrap());
        request
    };
    let response = app
        .request(with_basic(
            basic(&basic_id, "wrong"),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    let response = app
        .request(with_basic(
            "Basic %%%".to_owned(),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    // Two methods at once.
    let response = app
        .request(with_basic(
            basic(&basic_id, "s3cret"),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", "s3cret"),
            ],
        ))
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&response), "invalid_request");

    // And the right credentials work, both ways.
    app.request(with_basic(
        basic(&basic_id, "s3cret"),
        &[("grant_type", "client_credentials")],
    ))
    .await
    .assert_status(StatusCode::OK);
    app.token(&[
        ("grant_type", "client_credentials"),
        ("client_id", &post_id),
        ("client_secret", "s3cret"),
    ])
    .await
    .assert_status(StatusCode::OK);
}

async fn grant_type_problems_have_their_own_errors(db: Database) {
    let app = ApiApp::new(db).await;
    let public = app.public_client().await;
    let id = public.id.to_string();
    let cases = [
        (vec![("client_id", id.as_str())], "invalid_request"),
        (
            vec![("client_id", id.as_str()), ("grant_type", "password")],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("client_id", id.as_str()),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("client_id", id.as_str()),
                ("grant_type", "client_credentials"),
            ],
            "unauthorized_client",
        ),
    ];
    for (form, error) in cases {
        let response = app.token(&form).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&response), error, "{form:?}");
    }
}

async fn malformed_requests_are_4xx_never_500(db: Database) {
    let app = ApiApp::new(db).await;
    let public = app.public_client().await;
    let id = public.id.to_string();
    let url = path(routes::OAUTH2_TOKEN);
    let form = format!("grant_type=refresh_token&client_id={id}&refresh_token=x");
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "json body",
            "application/json",
            br#"{"grant_type":"refresh_token"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no content type",
            "",
            form.clone().into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "repeated parameter",
            "application/x-www-form-urlencoded",
            format!("{form}&grant_type=refresh_token").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad utf-8",
            "application/x-www-form-urlencoded",
            format!("{form}&x=%ff%fe").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "raw bad utf-8",
            "application/x-www-form-urlencoded",
            [form.as_bytes(), b"&x=\xff"].concat(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broken escape",
            "application/x-www-form-urlencoded",
            format!("{form}&x=%g1").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "huge body",
            "application/x-www-form-urlencoded",
            format!("{form}&x={}", "a".repeat(70 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "empty body",
            "application/x-www-form-urlencoded",
            Vec::new(),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, content_type, body, status) in cases {
        let mut builder = axum::http::Request::post(&url);
        if !content_type.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let response = app.request(builder.body(Body::from(body)).unwrap()).await;
        assert_eq!(response.status, status, "{name}: {}", response.text());
        assert!(response.json()["error"].is_string(), "{name}");
    }
    // GET is not a token request.
    let response = app.get(&url).await;
    response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
}

async fn refresh_rotates_the_pair_and_revokes_the_old_access_token(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, _, first) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh1 = first.refresh_token.clone().unwrap();
    app.clock.advance(Duration::from_secs(60));
    let response = app.refresh(&client, &refresh1).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let second = response.json();
    assert_eq!(second["scope"], MATRIX_SCOPE);
    assert_eq!(second["expires_in"], 300);
    assert!(second.get("id_token").is_none());
    let access2 = second["access_token"].as_str().unwrap();
    let refresh2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh1);
    assert_eq!(app.introspect(&first.access_token).await["active"], false);
    assert_eq!(app.introspect(access2).await["active"], true);

    // The current one works, and no device call was made for refreshes. (Replaying
    // `refresh1` now would end the session: see the reuse tests below.)
    app.refresh(&client, refresh2)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(app.homeserver.calls().len(), 1);
}

async fn a_lost_refresh_response_can_be_replayed_until_the_successor_is_used(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, _, first) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh1 = first.refresh_token.unwrap();
    let lost = app.refresh(&client, &refresh1).await.json();
    // The client never saw `lost`, and retries with the old token.
    let response = app.refresh(&client, &refresh1).await;
    response.assert_status(StatusCode::OK);
    let retried = response.json();
    let lost_refresh = lost["refresh_token"].as_str().unwrap();
    assert_ne!(retried["refresh_token"].as_str(), Some(lost_refresh));
    assert_eq!(
        app.introspect(lost["access_token"].as_str().unwrap()).await["active"],
        false
    );
    let response = app.refresh(&client, lost_refresh).await;
    assert_eq!(error_of(&response), "invalid_grant");
    // A second retry before the fresh pair is used is still tolerated.
    let response = app.refresh(&client, &refresh1).await;
    response.assert_status(StatusCode::OK);
    let fresh = response.json();
    // The fresh pair works, and the session was never ended.
    assert_eq!(
        app.introspect(fresh["access_token"].as_str().unwrap())
            .await["active"],
        true
    );
    app.refresh(&client, fresh["refresh_token"].as_str().unwrap())
        .await
        .assert_status(StatusCode::OK);
    assert!(
        !app.homeserver
            .calls()
            .iter()
            .any(|call| matches!(call, MockCall::DeleteDevice(..)))
    );
    assert!(app.homeserver.devices("alice").contains(DEVICE));
}

/// The stored session of `refresh_token`, and the token's row.
async fn stored_session(app: &ApiApp, refresh_token: &str) -> (Session, RefreshToken) {
    let mut conn = app.conn().await;
    let token = refresh_tokens::find_refresh_token_by_sha256(&mut conn, &sha256_hex(refresh_token))
        .await
        .unwrap()
        .unwrap();
    let session = oauth2_sessions::find_oauth2_session(&mut conn, token.session_id)
        .await
        .unwrap()
        .unwrap();
    (session, token)
}

/// After a replay ended the session: `invalid_grant`, every token of the session dead and
/// revoked, the session finished and its device deleted in the homeserver.
async fn assert_session_ended_by_replay(
    app: &ApiApp,
    client: &Client,
    replay: &crate::app::testing::TestResponse,
    current: &Tokens,
) {
    replay.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(error_of(replay), "invalid_grant");
    assert_eq!(replay.header("cache-control"), Some("no-store"));
    assert_eq!(
        app.introspect(&current.access_token).await,
        serde_json::json!({"active": false})
    );
    let current_refresh = current.refresh_token.as_deref().unwrap();
    assert_eq!(
        error_of(&app.refresh(client, current_refresh).await),
        "invalid_grant"
    );
    let (session, token) = stored_session(app, current_refresh).await;
    assert!(session.finished_at.is_some());
    assert!(token.revoked_at.is_some());
    let access = access_tokens::find_access_token_by_sha256(
        &mut *app.conn().await,
        &sha256_hex(&current.access_token),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(access.revoked_at.is_some());
    assert!(app.homeserver.calls().contains(&MockCall::DeleteDevice(
        "alice".to_owned(),
        DEVICE.to_owned()
    )));
    assert!(!app.homeserver.devices("alice").contains(DEVICE));
}

async fn refresh_token_reuse_after_the_successor_was_used_revokes_the_session(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, _, first) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh1 = first.refresh_token.unwrap();
    let response = app.refresh(&client, &refresh1).await;
    response.assert_status(StatusCode::OK);
    let second = Tokens::from_response(&response);
    // The client moved on: Synapse saw its new access token.
    assert_eq!(app.introspect(&second.access_token).await["active"], true);

    // Someone else presents the old refresh token (RFC 9700 §4.14.2).
    let replay = app.refresh(&client, &refresh1).await;
    assert_session_ended_by_replay(&app, &client, &replay, &second).await;
}

async fn refresh_token_reuse_after_the_successor_was_refreshed_revokes_the_session(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, _, first) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh1 = first.refresh_token.unwrap();
    let second = app.refresh(&client, &refresh1).await.json();
    // The client refreshed again without using the second access token.
    let response = app
        .refresh(&client, second["refresh_token"].as_str().unwrap())
        .await;
    response.assert_status(StatusCode::OK);
    let third = Tokens::from_response(&response);

    let replay = app.refresh(&client, &refresh1).await;
    assert_session_ended_by_replay(&app, &client, &replay, &third).await;
}

async fn refresh_is_refused_for_other_clients_ended_sessions_and_locked_users(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, user, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh = tokens.refresh_token.unwrap();
    let other = app.public_client().await;
    for (name, token, client) in [
        ("other client", refresh.as_str(), &other),
        (
            "access token as refresh token",
            tokens.access_token.as_str(),
            &client,
        ),
        ("garbage", "mar_garbage", &client),
        (
            "unknown",
            "mar_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000",
            &client,
        ),
    ] {
        let response = app.refresh(client, token).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&response), "invalid_grant", "{name}");
    }
    let id = client.id.to_string();
    let response = app
        .token(&[("grant_type", "refresh_token"), ("client_id", &id)])
        .await;
    assert_eq!(error_of(&response), "invalid_request");

    users::lock_user(&mut *app.conn().await, &app.clock, user.id)
        .await
        .unwrap();
    assert_eq!(
        error_of(&app.refresh(&client, &refresh).await),
        "invalid_grant"
    );
    users::unlock_user(&mut *app.conn().await, user.id)
        .await
        .unwrap();
    app.refresh(&client, &refresh)
        .await
        .assert_status(StatusCode::OK);
}

async fn client_credentials_gives_a_userless_access_token(db: Database) {
    let app = ApiApp::new(db).await;
    let client = app
        .confidential_client(ClientAuthMethod::ClientSecretPost, "s3cret")
        .await;
    let id = client.id.to_string();
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "s3cret"),
            ("scope", "urn:mas:graphql:*"),
        ])
        .await;
    response.assert_status(StatusCode::OK);
    let body = response.json();
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
    assert_eq!(body["scope"], "urn:mas:graphql:*");
    let answer = app.introspect(body["access_token"].as_str().unwrap()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], id);
    assert!(answer.get("username").is_none());

    let no_scope = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "s3cret"),
        ])
        .await
        .json();
    assert!(no_scope.get("scope").is_none());

    for scope in [
        "urn:matrix:client:api:*",
        "urn:synapse:admin:*",
        "urn:mas:admin",
        "a\"b",
    ] {
        let response = app
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "s3cret"),
                ("scope", scope),
            ])
            .await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&response), "invalid_scope", "{scope}");
    }
}

async fn expires_in_follows_the_configured_access_token_ttl(db: Database) {
    let mut app = ApiApp::new(db).await;
    let mut state = app.state.clone();
    state.site = Arc::new(SiteConfig {
        access_token_ttl: Duration::from_secs(86_400),
        ..SiteConfig::clone(&state.site)
    });
    app.router = build_router(state.clone(), &appliance_listener());
    app.state = state;
    let (client, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    assert_eq!(tokens.body["expires_in"], 86_400);
    app.clock.advance(Duration::from_secs(86_399));
    let answer = app.introspect(&tokens.access_token).await;
    assert_eq!(answer["expires_in"], 1);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.introspect(&tokens.access_token).await["active"], false);
    let refreshed = app
        .refresh(&client, &tokens.refresh_token.unwrap())
        .await
        .json();
    assert_eq!(refreshed["expires_in"], 86_400);
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
    client_authentication_failures_are_invalid_client,
    grant_type_problems_have_their_own_errors,
    malformed_requests_are_4xx_never_500,
    refresh_rotates_the_pair_and_revokes_the_old_access_token,
    a_lost_refresh_response_can_be_replayed_until_the_successor_is_used,
    refresh_token_reuse_after_the_successor_was_used_revokes_the_session,
    refresh_token_reuse_after_the_successor_was_refreshed_revokes_the_session,
    refresh_is_refused_for_other_clients_ended_sessions_and_locked_users,
    client_credentials_gives_a_userless_access_token,
    expires_in_follows_the_configured_access_token_ttl,
);
