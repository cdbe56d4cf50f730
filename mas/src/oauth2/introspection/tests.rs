//! `POST /oauth2/introspect` through the real router, on both backends.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::app::testing::oauth::{ApiApp, DEVICE, MATRIX_SCOPE, basic, path};
use crate::app::testing::{MATRIX_SECRET, TestResponse, bearer, form_request};
use crate::config::ClientConfig;
use crate::crypto::sha256_hex;
use crate::model::ClientAuthMethod;
use crate::routes;
use crate::storage::static_clients::sync_static_clients;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, access_tokens, oauth2_sessions, users};

/// The `client_id` of the static client.
const STATIC_CLIENT_ID: &str = "01J00000000000000000SYNAPS";

fn inactive() -> serde_json::Value {
    json!({"active": false})
}

async fn post(app: &ApiApp, form: &[(&str, &str)], secret: Option<&str>) -> TestResponse {
    let request = form_request(Method::POST, &path(routes::OAUTH2_INTROSPECT), form);
    let request = match secret {
        Some(secret) => bearer(request, secret),
        None => request,
    };
    app.request(request).await
}

async fn an_active_access_token_has_every_field_synapse_reads(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, user, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let now = 1_704_067_200;
    let answer = app.introspect(&tokens.access_token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["sub"], user.sub());
    assert_eq!(answer["client_id"], client.id.to_string());
    assert_eq!(answer["token_type"], "access_token");
    assert_eq!(answer["iat"], now);
    assert_eq!(answer["nbf"], now);
    assert_eq!(answer["exp"], now + 300);
    // An integer, or Synapse answers 503.
    assert!(answer["expires_in"].is_u64(), "{answer}");
    assert_eq!(answer["expires_in"], 300);
    assert!(answer["jti"].is_string());
    assert_eq!(
        answer["scope"],
        format!(
            "openid urn:matrix:client:api:* urn:matrix:client:device:{DEVICE} \
             urn:matrix:org.matrix.msc2967.client:api:* \
             urn:matrix:org.matrix.msc2967.client:device:{DEVICE}"
        )
    );
    // OAuth sessions keep their device in the scope, header or not.
    assert!(answer.get("device_id").is_none());
    let without_header = post(
        &app,
        &[("token", tokens.access_token.as_str())],
        Some(MATRIX_SECRET),
    )
    .await;
    without_header.assert_status(StatusCode::OK);
    assert_eq!(without_header.json()["scope"], answer["scope"]);
    assert!(without_header.json().get("device_id").is_none());

    app.clock.advance(Duration::from_millis(100_500));
    assert_eq!(
        app.introspect(&tokens.access_token).await["expires_in"],
        199
    );
}

async fn the_first_use_is_recorded_once(db: Database) {
    let app = ApiApp::new(db).await;
    let (_, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let hash = sha256_hex(&tokens.access_token);
    let stored = || async {
        access_tokens::find_access_token_by_sha256(&mut *app.conn().await, &hash)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(stored().await.first_used_at, None);
    app.introspect(&tokens.access_token).await;
    let first = stored().await.first_used_at.unwrap();
    app.clock.advance(Duration::from_secs(5));
    app.introspect(&tokens.access_token).await;
    assert_eq!(stored().await.first_used_at, Some(first));
}

async fn every_invalid_token_is_200_active_false(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, user, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh = tokens.refresh_token.clone().unwrap();
    for token in [
        "nonsense",
        "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4",
        "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000",
        "syt_legacy_token",
        "mct_abcdefghijklmnopqrstuvwxyz0123_06fQKm",
        refresh.as_str(),
    ] {
        assert_eq!(app.introspect(token).await, inactive(), "{token}");
    }
    // A hint that does not match the token's kind.
    let response = post(
        &app,
        &[
            ("token", tokens.access_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ],
        Some(MATRIX_SECRET),
    )
    .await;
    assert_eq!(response.json(), inactive());

    // Locked, then deactivated user.
    users::lock_user(&mut *app.conn().await, &app.clock, user.id)
        .await
        .unwrap();
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
    users::unlock_user(&mut *app.conn().await, user.id)
        .await
        .unwrap();
    assert_eq!(app.introspect(&tokens.access_token).await["active"], true);
    users::deactivate_user(&mut *app.conn().await, &app.clock, user.id)
        .await
        .unwrap();
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
    users::reactivate_user(&mut *app.conn().await, user.id)
        .await
        .unwrap();

    // Refreshed away (revoked).
    let refreshed = app.refresh(&client, &refresh).await.json();
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect(&access2).await["active"], true);

    // Expired.
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(app.introspect(&access2).await, inactive());

    // Finished session.
    let (_, _, other) = app.logged_in("bob", MATRIX_SCOPE).await;
    let found = access_tokens::find_access_token_by_sha256(
        &mut *app.conn().await,
        &sha256_hex(&other.access_token),
    )
    .await
    .unwrap()
    .unwrap();
    oauth2_sessions::finish_oauth2_session(&mut *app.conn().await, &app.clock, found.session_id)
        .await
        .unwrap();
    assert_eq!(app.introspect(&other.access_token).await, inactive());
}

async fn refresh_tokens_can_be_introspected_with_their_hint(db: Database) {
    let app = ApiApp::new(db).await;
    let (_, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let refresh = tokens.refresh_token.unwrap();
    let response = post(
        &app,
        &[
            ("token", refresh.as_str()),
            ("token_type_hint", "refresh_token"),
        ],
        Some(MATRIX_SECRET),
    )
    .await;
    let answer = response.json();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["username"], "alice");
    assert!(answer.get("exp").is_none());
    assert!(answer.get("expires_in").is_none());
    // Without a hint the prefix decides.
    let response = post(&app, &[("token", refresh.as_str())], Some(MATRIX_SECRET)).await;
    assert_eq!(response.json()["token_type"], "refresh_token");
}

async fn the_admin_scope_is_passed_through(db: Database) {
    let app = ApiApp::new(db).await;
    let scope = format!("{MATRIX_SCOPE} urn:synapse:admin:*");
    let (_, _, tokens) = app.logged_in("alice", &scope).await;
    let answer = app.introspect(&tokens.access_token).await;
    let scopes: Vec<&str> = answer["scope"].as_str().unwrap().split(' ').collect();
    assert!(scopes.contains(&"urn:synapse:admin:*"), "{answer}");
}

async fn callers_must_authenticate(db: Database) {
    let app = ApiApp::new(db).await;
    let (public, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let token = tokens.access_token.as_str();

    let response = post(&app, &[("token", token)], None).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    let response = post(&app, &[("token", token)], Some("wrong-secret")).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "access_denied");

    let public_id = public.id.to_string();
    let response = post(&app, &[("token", token), ("client_id", &public_id)], None).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "access_denied");
}

/// `POST /oauth2/introspect` about `token`, authenticated with `Authorization: Basic`.
async fn post_basic(app: &ApiApp, token: &str, client_id: &str, secret: &str) -> TestResponse {
    let mut request = form_request(
        Method::POST,
        &path(routes::OAUTH2_INTROSPECT),
        &[("token", token)],
    );
    request.headers_mut().insert(
        header::AUTHORIZATION,
        basic(client_id, secret).parse().unwrap(),
    );
    app.request(request).await
}

async fn only_static_clients_may_introspect_with_client_credentials(db: Database) {
    let app = ApiApp::new(db).await;
    let (_, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let token = tokens.access_token.as_str();

    // A confidential client anyone could register (RFC 7591) is refused, its credentials
    // right or not.
    let registered = app
        .post_json(
            &path(routes::OAUTH2_REGISTRATION),
            &json!({
                "client_name": "Web app",
                "client_uri": "https://app.example.com/",
                "redirect_uris": ["https://app.example.com/cb"],
                "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }),
        )
        .await;
    registered.assert_status(StatusCode::CREATED);
    let registered = registered.json();
    let client_id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    for secret in [secret, "wrong"] {
        let response = post_basic(&app, token, client_id, secret).await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(response.json()["error"], "invalid_client");
        assert!(response.json()["error_description"].is_string());
        assert_eq!(response.header("content-type"), Some("application/json"));
    }
    // The same with a confidential client stored without the config.
    let dynamic = app
        .confidential_client(ClientAuthMethod::ClientSecretBasic, "s3cret")
        .await;
    let response = post_basic(&app, token, &dynamic.id.to_string(), "s3cret").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    // A client declared in the config (the legacy MSC3861 setup) may introspect.
    let config = ClientConfig {
        client_id: STATIC_CLIENT_ID.to_owned(),
        client_auth_method: "client_secret_basic".to_owned(),
        client_name: Some("Synapse".to_owned()),
        client_secret: Some("static-s3cret".to_owned()),
        client_secret_file: None,
        redirect_uris: Vec::new(),
    };
    sync_static_clients(
        &app.state.db,
        &app.clock,
        &app.state.rng,
        &app.state.encrypter,
        &[config],
    )
    .await
    .unwrap();
    let response = post_basic(&app, token, STATIC_CLIENT_ID, "static-s3cret").await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json()["active"], true);
    assert_eq!(response.json()["username"], "alice");
    let response = post_basic(&app, token, STATIC_CLIENT_ID, "wrong").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    // Synapse's shared secret is unchanged.
    assert_eq!(app.introspect(token).await["active"], true);
}

async fn malformed_introspection_requests_are_400(db: Database) {
    let app = ApiApp::new(db).await;
    let url = path(routes::OAUTH2_INTROSPECT);
    let response = post(
        &app,
        &[("token_type_hint", "access_token")],
        Some(MATRIX_SECRET),
    )
    .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_request");
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            b"token=a&token=b".to_vec(),
        ),
        ("application/x-www-form-urlencoded", b"token=%ff".to_vec()),
        ("application/json", br#"{"token":"a"}"#.to_vec()),
    ] {
        let request = axum::http::Request::post(&url)
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = app.request(bearer(request, MATRIX_SECRET)).await;
        response.assert_status(StatusCode::BAD_REQUEST);
    }
    let huge = format!("token={}", "a".repeat(100 * 1024));
    let response = app
        .post_raw(&url, "application/x-www-form-urlencoded", huge)
        .await;
    response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
}

test_on_both_backends!(
    an_active_access_token_has_every_field_synapse_reads,
    the_first_use_is_recorded_once,
    every_invalid_token_is_200_active_false,
    refresh_tokens_can_be_introspected_with_their_hint,
    the_admin_scope_is_passed_through,
    callers_must_authenticate,
    only_static_clients_may_introspect_with_client_credentials,
    malformed_introspection_requests_are_400,
);
