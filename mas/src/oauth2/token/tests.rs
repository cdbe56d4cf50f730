//! `POST /oauth2/token` through the real router, on both backends: what every grant shares
//! (client authentication, `grant_type`, malformed requests, token lifetimes). Each grant's own
//! tests are next to it (`authorization_code/tests.rs`, `refresh_token/tests.rs`,
//! `client_credentials/tests.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};

use crate::app::testing::oauth::{ApiApp, MATRIX_SCOPE, basic, path};
use crate::app::testing::{TestResponse, appliance_listener, form_request};
use crate::app::{SiteConfig, build_router};
use crate::model::ClientAuthMethod;
use crate::routes;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

/// The `error` member of an OAuth error answer.
pub(super) fn error_of(response: &TestResponse) -> String {
    response.json()["error"].as_str().unwrap().to_owned()
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
            "unauthorized_client",
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
    client_authentication_failures_are_invalid_client,
    grant_type_problems_have_their_own_errors,
    malformed_requests_are_4xx_never_500,
    expires_in_follows_the_configured_access_token_ttl,
);
