//! Discovery, WebFinger, the JWKS and CORS through the real router, on both backends.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::app::testing::appliance_listener;
use crate::app::testing::oauth::{ApiApp, path};
use crate::app::{SiteConfig, build_router};
use crate::routes;
use crate::storage::Database;
use crate::storage::testing::test_on_both_backends;

async fn discovery_has_every_field_with_public_urls(db: Database) {
    let app = ApiApp::new(db).await;
    // A request over loopback, like Synapse's: the Host header must not leak into the URLs.
    let request = Request::get(path(routes::OIDC_DISCOVERY))
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let response = app.request(request).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let base = "http://localhost:8000/auth";
    assert_eq!(
        response.json(),
        json!({
            "issuer": "http://localhost:8000/auth/",
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/oauth2/token"),
            "device_authorization_endpoint": format!("{base}/oauth2/device"),
            "jwks_uri": format!("{base}/oauth2/keys.json"),
            "registration_endpoint": format!("{base}/oauth2/registration"),
            "introspection_endpoint": format!("{base}/oauth2/introspect"),
            "revocation_endpoint": format!("{base}/oauth2/revoke"),
            "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
            "scopes_supported": ["openid", "email"],
            "response_types_supported": ["code", "id_token", "code id_token"],
            "response_modes_supported": ["form_post", "query", "fragment"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
            "display_values_supported": ["page"],
            "claim_types_supported": ["normal"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "nonce", "auth_time", "at_hash", "c_hash"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "prompt_values_supported": ["login"],
            "account_management_uri": format!("{base}/account/"),
            "account_management_actions_supported": [
                "org.matrix.profile",
                "org.matrix.devices_list",
                "org.matrix.device_view",
                "org.matrix.device_delete",
                "org.matrix.cross_signing_reset",
                "org.matrix.sessions_list",
                "org.matrix.session_view",
                "org.matrix.session_end",
            ],
        })
    );
}

async fn create_is_offered_when_password_registration_is_enabled(db: Database) {
    let mut app = ApiApp::new(db).await;
    let mut state = app.state.clone();
    let mut site = SiteConfig::clone(&state.site);
    site.account.password_registration_enabled = true;
    state.site = Arc::new(site);
    app.router = build_router(state, &appliance_listener());
    let body = app.get(&path(routes::OIDC_DISCOVERY)).await.json();
    assert_eq!(body["prompt_values_supported"], json!(["login", "create"]));
}

async fn the_jwks_has_both_keys_with_kids(db: Database) {
    let app = ApiApp::new(db).await;
    let response = app.get(&path(routes::OAUTH2_KEYS)).await;
    response.assert_status(StatusCode::OK);
    let body = response.json();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[1]["kty"], "EC");
    assert_eq!(keys[1]["alg"], "ES256");
    for key in keys {
        assert!(key["kid"].is_string());
        assert!(key.get("d").is_none(), "no private parts");
    }
}

async fn webfinger_links_the_issuer(db: Database) {
    let app = ApiApp::new(db).await;
    let url = format!(
        "{}?resource=acct:alice@example.com&rel=http%3A%2F%2Fopenid.net%2Fspecs%2Fconnect%2F1.0%2Fissuer",
        path(routes::WEBFINGER)
    );
    let response = app.get(&url).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("application/jrd+json")
    );
    assert_eq!(
        response.json(),
        json!({
            "subject": "acct:alice@example.com",
            "links": [{"rel": "http://openid.net/specs/connect/1.0/issuer", "href": "http://localhost:8000/auth/"}],
        })
    );
    let other = format!(
        "{}?resource=acct:alice@example.com&rel=other",
        path(routes::WEBFINGER)
    );
    assert_eq!(app.get(&other).await.json()["links"], json!([]));
    // RFC 7033 §4.3: `rel` may be repeated; the issuer link is given when one of them asks.
    let repeated = format!(
        "{}?resource=acct:alice@example.com&rel=other&rel=http%3A%2F%2Fopenid.net%2Fspecs%2Fconnect%2F1.0%2Fissuer",
        path(routes::WEBFINGER)
    );
    let links = app.get(&repeated).await.json()["links"].clone();
    assert_eq!(links.as_array().map(Vec::len), Some(1), "{links}");
    for bad in ["resource=acct:a@b&resource=acct:c@d", "resource=%zz"] {
        let response = app.get(&format!("{}?{bad}", path(routes::WEBFINGER))).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(response.json()["error"], "invalid_request", "{bad}");
    }
    let response = app.get(&path(routes::WEBFINGER)).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_request");
}

async fn cors_preflight_is_answered(db: Database) {
    let app = ApiApp::new(db).await;
    for route in [routes::OAUTH2_TOKEN, routes::OIDC_DISCOVERY] {
        let request = Request::options(path(route))
            .header(header::ORIGIN, "https://app.element.io")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap();
        let response = app.request(request).await;
        // The Fetch standard asks for an "ok status" (200-299); tower-http answers 200.
        assert!(response.status.is_success(), "{}", response.status);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("content-type")
        );
        assert!(
            response
                .header("access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
    }
    // Errors carry the header too, so browsers can read them.
    let response = app
        .post_form(&path(routes::OAUTH2_TOKEN), &[("grant_type", "x")])
        .await;
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

test_on_both_backends!(
    discovery_has_every_field_with_public_urls,
    create_is_offered_when_password_registration_is_enabled,
    the_jwks_has_both_keys_with_kids,
    webfinger_links_the_issuer,
    cors_preflight_is_answered,
);
