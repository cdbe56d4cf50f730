//! `POST /oauth2/revoke` through the real router, on both backends.

use axum::http::{Method, StatusCode, header};

use crate::app::testing::oauth::{ApiApp, DEVICE, MATRIX_SCOPE, basic, path};
use crate::app::testing::{TestResponse, form_request};
use crate::homeserver::{MockCall, MockFailure};
use crate::model::ClientAuthMethod;
use crate::routes;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

async fn revoke(app: &ApiApp, form: &[(&str, &str)]) -> TestResponse {
    app.post_form(&path(routes::OAUTH2_REVOKE), form).await
}

async fn revoking_either_token_ends_the_session_and_deletes_the_device(db: Database) {
    let app = ApiApp::new(db).await;
    for which in ["access", "refresh"] {
        let username = format!("user{which}");
        let (client, _, tokens) = app.logged_in(&username, MATRIX_SCOPE).await;
        let refresh = tokens.refresh_token.clone().unwrap();
        let (token, hint) = match which {
            "access" => (tokens.access_token.as_str(), "access_token"),
            _ => (refresh.as_str(), "refresh_token"),
        };
        let id = client.id.to_string();
        let response = revoke(
            &app,
            &[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", &id),
            ],
        )
        .await;
        response.assert_status(StatusCode::OK);
        assert!(response.body.is_empty());
        // Some clients (oidc-client-ts) reject a text/plain answer.
        assert_eq!(response.header("content-type"), None);

        assert_eq!(app.introspect(&tokens.access_token).await["active"], false);
        let response = app.refresh(&client, &refresh).await;
        assert_eq!(response.json()["error"], "invalid_grant");
        assert!(
            app.homeserver
                .calls()
                .contains(&MockCall::DeleteDevice(username.clone(), DEVICE.to_owned()))
        );
        assert!(!app.homeserver.devices(&username).contains(DEVICE));

        // Revoking again is fine and does nothing more.
        let calls = app.homeserver.calls().len();
        revoke(&app, &[("token", token), ("client_id", &id)])
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(app.homeserver.calls().len(), calls);
    }
}

async fn a_failed_device_deletion_queues_a_device_sync(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, user, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let id = client.id.to_string();
    revoke(&app, &[("token", &tokens.access_token), ("client_id", &id)])
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(app.introspect(&tokens.access_token).await["active"], false);
    let jobs: Vec<(String, String)> = sqlx::query_as("SELECT queue_name, payload FROM queue_jobs")
        .fetch_all(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0, "sync-devices");
    assert!(jobs[0].1.contains(&user.id.to_string()));
}

async fn unknown_and_malformed_tokens_are_200(db: Database) {
    let app = ApiApp::new(db).await;
    let client = app.public_client().await;
    let id = client.id.to_string();
    for token in [
        "nonsense",
        "mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4",
        "mar_0123456789abcdefghijABCDEFGHIJ_wBcFB1",
        "syt_abc",
    ] {
        let response = revoke(&app, &[("token", token), ("client_id", &id)]).await;
        response.assert_status(StatusCode::OK);
        assert!(response.body.is_empty());
    }
}

async fn revocation_errors(db: Database) {
    let app = ApiApp::new(db).await;
    let (client, _, tokens) = app.logged_in("alice", MATRIX_SCOPE).await;
    let other = app.public_client().await;
    let id = client.id.to_string();
    let other_id = other.id.to_string();
    let token = tokens.access_token.as_str();

    let response = revoke(&app, &[("token", token)]).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    let response = revoke(&app, &[("client_id", &id)]).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_request");

    let response = revoke(
        &app,
        &[
            ("token", token),
            ("token_type_hint", "id_token"),
            ("client_id", &id),
        ],
    )
    .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "unsupported_token_type");

    let response = revoke(&app, &[("token", token), ("client_id", &other_id)]).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "unauthorized_client");

    let response = revoke(
        &app,
        &[("token", token), ("client_id", &id), ("client_secret", "x")],
    )
    .await;
    response.assert_status(StatusCode::UNAUTHORIZED);

    let response = app
        .post_raw(
            &path(routes::OAUTH2_REVOKE),
            "application/x-www-form-urlencoded",
            format!("token={token}&token={token}&client_id={id}"),
        )
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);

    // Nothing above ended the session.
    assert_eq!(app.introspect(token).await["active"], true);
}

async fn confidential_clients_revoke_with_basic_auth(db: Database) {
    let app = ApiApp::new(db).await;
    let client = app
        .confidential_client(ClientAuthMethod::ClientSecretBasic, "s3cret")
        .await;
    let mut request = form_request(
        Method::POST,
        &path(routes::OAUTH2_TOKEN),
        &[("grant_type", "client_credentials")],
    );
    let authorization = basic(&client.id.to_string(), "s3cret");
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, authorization.parse().unwrap());
    let token = app.request(request).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut request = form_request(
        Method::POST,
        &path(routes::OAUTH2_REVOKE),
        &[("token", &token)],
    );
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, authorization.parse().unwrap());
    app.request(request).await.assert_status(StatusCode::OK);
    assert_eq!(app.introspect(&token).await["active"], false);
}

test_on_both_backends!(
    revoking_either_token_ends_the_session_and_deletes_the_device,
    a_failed_device_deletion_queues_a_device_sync,
    unknown_and_malformed_tokens_are_200,
    revocation_errors,
    confidential_clients_revoke_with_basic_auth,
);
