//! The `client_credentials` grant through the real router, on both backends.

use axum::http::StatusCode;

use crate::app::testing::oauth::ApiApp;
use crate::model::ClientAuthMethod;
use crate::oauth2::token::tests::error_of;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

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

test_on_both_backends!(client_credentials_gives_a_userless_access_token,);
