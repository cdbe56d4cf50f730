//! `POST /oauth2/device` through the real router, on both backends: the answer (RFC 8628 §3.2),
//! what is stored, client authentication and registration, the scope, and the per-address limit.

use axum::http::StatusCode;

use crate::app::testing::oauth::{ApiApp, MATRIX_SCOPE, path};
use crate::clock::Clock as _;
use crate::crypto::random::USER_CODE_ALPHABET;
use crate::crypto::sha256_hex;
use crate::model::{DeviceGrantStage, normalize_user_code};
use crate::routes;
use crate::storage::Database;
use crate::storage::device_grants;
use crate::storage::testing::test_on_both_backends;

async fn a_device_gets_codes_and_the_grant_is_stored(db: Database) {
    let app = ApiApp::new(db).await;
    let client = app.device_client().await;
    let response = app
        .device_authorization(&client, MATRIX_SCOPE, Some("192.0.2.44:5000"))
        .await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("pragma"), Some("no-cache"));
    let body = response.json();
    let device_code = body["device_code"].as_str().unwrap();
    assert_eq!(device_code.len(), 32);
    assert!(device_code.bytes().all(|b| b.is_ascii_alphanumeric()));
    let user_code = body["user_code"].as_str().unwrap();
    let (head, tail) = user_code.split_once('-').unwrap();
    assert_eq!((head.len(), tail.len()), (4, 4), "{user_code}");
    assert!(
        format!("{head}{tail}")
            .bytes()
            .all(|b| USER_CODE_ALPHABET.contains(&b)),
        "{user_code}"
    );
    assert_eq!(body["verification_uri"], "http://localhost:8000/auth/link");
    assert_eq!(
        body["verification_uri_complete"],
        format!("http://localhost:8000/auth/link?code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    assert_eq!(body.as_object().unwrap().len(), 6, "{body}");

    let mut conn = app.conn().await;
    let grant =
        device_grants::find_device_grant_by_device_code(&mut conn, &sha256_hex(device_code))
            .await
            .unwrap()
            .expect("stored by the hash of the device code");
    assert_eq!(
        Some(grant.request.user_code.clone()),
        normalize_user_code(user_code)
    );
    assert_eq!(grant.request.client_id, client.id);
    assert_eq!(grant.request.scope.to_string(), MATRIX_SCOPE);
    assert_eq!(grant.request.ip_address.as_deref(), Some("192.0.2.44"));
    assert_eq!(grant.request.user_agent.as_deref(), Some("Element X/26.12"));
    assert_eq!(grant.stage(), DeviceGrantStage::Pending);
    assert_eq!(grant.expires_at, app.clock.now_unix_ms() + 600_000);

    // Each request gets its own codes.
    let again = app
        .device_authorization(&client, MATRIX_SCOPE, None)
        .await
        .json();
    assert_ne!(again["device_code"], body["device_code"]);
    assert_ne!(again["user_code"], body["user_code"]);
}

async fn clients_must_authenticate_and_have_registered_the_grant(db: Database) {
    let app = ApiApp::new(db).await;
    let endpoint = path(routes::OAUTH2_DEVICE);
    let response = app.post_form(&endpoint, &[("scope", MATRIX_SCOPE)]).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    let unknown = ulid::Ulid::nil().to_string();
    let response = app
        .post_form(
            &endpoint,
            &[("client_id", &unknown), ("scope", MATRIX_SCOPE)],
        )
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"], "invalid_client");

    // Element X's code-flow client did not register the device code grant.
    let code_only = app.public_client().await;
    let response = app
        .device_authorization(&code_only, MATRIX_SCOPE, None)
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "unauthorized_client");

    let client = app.device_client().await;
    let response = app
        .device_authorization(&client, "bad\u{7f}scope", None)
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_scope");

    let mut conn = app.conn().await;
    let (grants,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oauth2_device_code_grants")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(grants, 0, "refused requests store nothing");
}

async fn requests_are_rate_limited_per_address(db: Database) {
    let app = ApiApp::new(db).await;
    let client = app.device_client().await;
    for n in 1..=10 {
        app.device_authorization(
            &client,
            MATRIX_SCOPE,
            Some(&format!("192.0.2.9:{}", 4000 + n)),
        )
        .await
        .assert_status(StatusCode::OK);
    }
    let response = app
        .device_authorization(&client, MATRIX_SCOPE, Some("192.0.2.9:4100"))
        .await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.header("retry-after"), Some("30"));
    assert_eq!(response.json()["error"], "invalid_request");
    // Another address is not affected; the first one gets one more every 30 s.
    app.device_authorization(&client, MATRIX_SCOPE, Some("192.0.2.10:4000"))
        .await
        .assert_status(StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(30));
    app.device_authorization(&client, MATRIX_SCOPE, Some("192.0.2.9:4000"))
        .await
        .assert_status(StatusCode::OK);
}

test_on_both_backends!(
    a_device_gets_codes_and_the_grant_is_stored,
    clients_must_authenticate_and_have_registered_the_grant,
    requests_are_rate_limited_per_address,
);
