//! `POST /oauth2/registration` through the real router, on both backends.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::testing::TestResponse;
use crate::app::testing::oauth::{ApiApp, path};
use crate::routes;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

/// What Element X sends.
fn element_x() -> Value {
    json!({
        "application_type": "native",
        "client_name": "Element X",
        "client_uri": "https://element.io/",
        "logo_uri": "https://element.io/mobile-icon.png",
        "policy_uri": "https://element.io/privacy",
        "tos_uri": "https://element.io/acceptable-use-policy-terms",
        "redirect_uris": ["io.element.app:/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "client_name#fr": "Element X en français",
        "software_id": "unknown members are ignored",
    })
}

async fn register(app: &ApiApp, body: &Value) -> TestResponse {
    app.post_json(&path(routes::OAUTH2_REGISTRATION), body)
        .await
}

async fn a_native_public_client_registers_and_is_deduplicated(db: Database) {
    let app = ApiApp::new(db).await;
    let response = register(&app, &element_x()).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(client_id.len(), 26);
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["client_id_issued_at"], 1_704_067_200);
    assert_eq!(body["redirect_uris"], json!(["io.element.app:/callback"]));
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["client_name"], "Element X");
    assert!(body.get("software_id").is_none());

    // The same metadata (members in another order, ignored members aside): the same client.
    let mut again = element_x();
    again["software_id"] = json!("something else");
    let response = register(&app, &again).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(response.json()["client_id"], client_id);

    let mut different = element_x();
    different["client_name"] = json!("Element X Nightly");
    let response = register(&app, &different).await;
    response.assert_status(StatusCode::CREATED);
    assert_ne!(response.json()["client_id"], client_id);
}

async fn loopback_redirects_with_any_port_are_allowed_for_native_clients(db: Database) {
    let app = ApiApp::new(db).await;
    let mut body = element_x();
    body["redirect_uris"] = json!([
        "http://127.0.0.1:34567/callback",
        "http://[::1]/callback",
        "http://localhost:8080/",
        "io.element:/cb"
    ]);
    register(&app, &body)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn a_confidential_client_gets_a_secret_that_works(db: Database) {
    let app = ApiApp::new(db).await;
    let body = json!({
        "client_name": "Web app",
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://app.example.com/cb"],
        "grant_types": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "contacts": ["admin@example.com"],
        "id_token_signed_response_alg": "ES256"
    });
    let response = register(&app, &body).await;
    response.assert_status(StatusCode::CREATED);
    let answer = response.json();
    let secret = answer["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 20);
    assert_eq!(answer["client_secret_expires_at"], 0);
    assert_eq!(answer["application_type"], "web");
    assert_eq!(answer["contacts"], json!(["admin@example.com"]));
    assert_eq!(answer["id_token_signed_response_alg"], "ES256");
    let client_id = answer["client_id"].as_str().unwrap();
    app.token(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
    ])
    .await
    .assert_status(StatusCode::OK);
    // Confidential clients are never deduplicated.
    let again = register(&app, &body).await.json();
    assert_ne!(again["client_id"], client_id);
}

async fn msc2966_violations_are_refused(db: Database) {
    let app = ApiApp::new(db).await;
    let with = |changes: Value| {
        let mut body = element_x();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    let cases = [
        (json!({"client_uri": null}), "invalid_client_metadata"),
        (
            json!({"client_uri": "http://element.io/"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://localhost/"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://github.io/"}),
            "invalid_client_metadata",
        ),
        (
            json!({"logo_uri": "https://evil.example/logo.png"}),
            "invalid_client_metadata",
        ),
        (
            json!({"tos_uri": "http://element.io/tos"}),
            "invalid_client_metadata",
        ),
        (
            json!({"policy_uri": "https://io/policy"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["com.example.app:/callback"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["io.element.app://host/callback"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["io.element.app:/callback#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://example.com/callback"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["not a url"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({"redirect_uris": null}), "invalid_redirect_uri"),
        (
            json!({"application_type": "web", "redirect_uris": ["http://localhost/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"application_type": "web", "redirect_uris": ["https://other.org/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"response_types": ["code token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"response_types": ["id_token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "magic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"application_type": "desktop"}),
            "invalid_client_metadata",
        ),
        (
            json!({"id_token_signed_response_alg": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"id_token_signed_response_alg": "HS256"}),
            "invalid_client_metadata",
        ),
        (
            json!({"userinfo_signed_response_alg": "RS512"}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_signing_alg": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"jwks": {"keys": []}, "jwks_uri": "https://element.io/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "io.element.app:/callback"}),
            "invalid_client_metadata",
        ),
        (json!({"client_name": 42}), "invalid_client_metadata"),
    ];
    for (changes, error) in cases {
        let response = register(&app, &with(changes.clone())).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{changes}: {}",
            response.text()
        );
        assert_eq!(response.json()["error"], error, "{changes}");
    }
}

async fn malformed_registration_bodies_are_4xx(db: Database) {
    let app = ApiApp::new(db).await;
    let url = path(routes::OAUTH2_REGISTRATION);
    let body = element_x().to_string();
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        (
            "application/x-www-form-urlencoded",
            b"client_name=x".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            b"[1, 2]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            b"\xff\xfe".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("application/json", Vec::new(), StatusCode::BAD_REQUEST),
        (
            "application/json",
            format!(
                "{}{}",
                &body[..body.len() - 1],
                format_args!(",\"x\":\"{}\"}}", "a".repeat(70 * 1024))
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (content_type, body, status) in cases {
        let response = app.post_raw(&url, content_type, body).await;
        assert_eq!(
            response.status,
            status,
            "{content_type}: {}",
            response.text()
        );
        assert!(response.json()["error"].is_string());
    }
    // The charset parameter is fine.
    app.post_raw(&url, "application/json; charset=utf-8", body)
        .await
        .assert_status(StatusCode::CREATED);
}

/// The exploit: a one-label `client_uri` host whose reverse is a script scheme, and that scheme
/// as the redirect URI, in any case. Refused, with nothing stored.
async fn script_scheme_redirect_uris_are_refused(db: Database) {
    let app = ApiApp::new(db).await;
    for (client_uri, redirect_uri) in [
        ("https://javascript/", "javascript:alert(document.domain)//"),
        ("https://javascript/", "JavaScript:alert(document.domain)//"),
        ("https://vbscript/", "vbscript:msgbox(1)"),
        ("https://data/", "data:text/html,x"),
        ("https://example.com/", "file:///etc/passwd"),
    ] {
        let mut body = element_x();
        body["client_uri"] = serde_json::json!(client_uri);
        body["logo_uri"] = Value::Null;
        body["policy_uri"] = Value::Null;
        body["tos_uri"] = Value::Null;
        body["redirect_uris"] = serde_json::json!([redirect_uri]);
        let response = register(&app, &body).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        let error = response.json();
        assert!(
            matches!(
                error["error"].as_str(),
                Some("invalid_redirect_uri" | "invalid_client_metadata")
            ),
            "{redirect_uri}: {error}"
        );
    }
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oauth2_clients")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

/// A registration of a confidential client named `name` from `peer`.
async fn register_from(app: &ApiApp, peer: &str, name: &str) -> TestResponse {
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    let body = json!({
        "client_name": name,
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://app.example.com/cb"],
    });
    let mut request = axum::http::Request::post(path(routes::OAUTH2_REGISTRATION))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    app.request(request).await
}

async fn registrations_are_rate_limited_per_address(db: Database) {
    let app = ApiApp::new(db).await;
    // Ten from one IPv6 /64, each address different.
    for n in 1..=10 {
        let response = register_from(&app, &format!("[2001:db8:3:4::{n:x}]:4000"), "Bot").await;
        response.assert_status(StatusCode::CREATED);
    }
    let response = register_from(&app, "[2001:db8:3:4:ffff::1]:4000", "Bot").await;
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.header("retry-after"), Some("60"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("retry in 60 s"),
        "{body}"
    );
    let mut conn = app.conn().await;
    let (clients,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oauth2_clients")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(clients, 10, "the refused request stored nothing");
    // Another /64, and an IPv4 address, are other clients.
    register_from(&app, "[2001:db8:3:5::1]:4000", "Bot")
        .await
        .assert_status(StatusCode::CREATED);
    register_from(&app, "192.0.2.30:4000", "Bot")
        .await
        .assert_status(StatusCode::CREATED);
    // One a minute after the burst.
    app.clock.advance(std::time::Duration::from_secs(60));
    register_from(&app, "[2001:db8:3:4::1]:4000", "Bot")
        .await
        .assert_status(StatusCode::CREATED);
    register_from(&app, "[2001:db8:3:4::1]:4000", "Bot")
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
}

/// What matrix-sdk registers for the new device of a QR login: the device code and refresh
/// grants, no redirect URI, no `response_types` (it leaves the empty list out).
async fn a_device_only_client_registers_without_response_types(db: Database) {
    let app = ApiApp::new(db).await;
    let body = json!({
        "application_type": "native",
        "client_name": "Element X",
        "client_uri": "https://element.io/",
        "grant_types": ["refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "token_endpoint_auth_method": "none",
    });
    let response = register(&app, &body).await;
    response.assert_status(StatusCode::CREATED);
    let answer = response.json();
    assert_eq!(
        answer["grant_types"],
        json!([
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(answer["response_types"], json!([]));

    // Element X's code-flow client with the device grant added keeps both.
    let mut both = element_x();
    both["grant_types"] = json!([
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code"
    ]);
    let answer = register(&app, &both).await.json();
    assert_eq!(
        answer["grant_types"],
        json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(answer["response_types"], json!(["code"]));

    // A response type still needs its grant.
    let mut code_without_grant = body.clone();
    code_without_grant["response_types"] = json!(["code"]);
    let response = register(&app, &code_without_grant).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_client_metadata");
}

test_on_both_backends!(
    a_device_only_client_registers_without_response_types,
    script_scheme_redirect_uris_are_refused,
    a_native_public_client_registers_and_is_deduplicated,
    loopback_redirects_with_any_port_are_allowed_for_native_clients,
    a_confidential_client_gets_a_secret_that_works,
    msc2966_violations_are_refused,
    malformed_registration_bodies_are_4xx,
    registrations_are_rate_limited_per_address,
);
