//! Compat tokens as Synapse sees them through introspection (legacy client, device scopes or
//! field, expiry, admin scope, locked users), and compat devices in the user's device set.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{introspect, login, password_body};
use crate::app::testing::TestApp;
use crate::crypto::{TokenKind, sha256_hex};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, compat, users};

fn scope_set(answer: &Value) -> BTreeSet<String> {
    answer["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn compat_tokens_introspect_as_legacy_with_device_scopes_or_field(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("ALICEDEVICE");
    body["refresh_token"] = json!(true);
    let login = login(&app, &body).await.json();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();

    let answer = introspect(&app, access, false).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "legacy");
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["sub"], alice.id.to_string());
    assert_eq!(answer["token_type"], "access_token");
    assert_eq!(answer["expires_in"], json!(300));
    assert!(answer["exp"].is_i64());
    assert!(answer.get("device_id").is_none());
    assert!(answer.get("jti").is_none());
    assert_eq!(
        scope_set(&answer),
        set(&[
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
            "urn:matrix:client:device:ALICEDEVICE",
            "urn:matrix:org.matrix.msc2967.client:device:ALICEDEVICE",
        ])
    );

    let answer = introspect(&app, access, true).await;
    assert_eq!(answer["device_id"], "ALICEDEVICE");
    assert_eq!(
        scope_set(&answer),
        set(&[
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
        ])
    );
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let stored = compat::find_compat_access_token_by_sha256(&mut conn, &sha256_hex(access))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.first_used_at.is_some());

    let answer = introspect(&app, refresh, true).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert!(answer.get("exp").is_none());

    // A refreshable access token expires after compat_token_ttl.
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(
        introspect(&app, access, true).await,
        json!({ "active": false })
    );
    assert_eq!(introspect(&app, refresh, true).await["active"], true);
}

async fn non_expiring_and_admin_tokens_introspect_until_the_user_is_locked(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    let session = compat::add_compat_session(
        &mut conn,
        &app.clock,
        &mut rng,
        compat::NewCompatSession {
            user_id: alice.id,
            device_id: "ADMINTOOL",
            user_session_id: None,
            is_synapse_admin: true,
            user_agent: None,
            human_name: None,
        },
    )
    .await
    .unwrap();
    let token = TokenKind::CompatAccessToken.generate(&mut rng);
    compat::add_compat_access_token(
        &mut conn,
        &app.clock,
        &mut rng,
        session.id,
        &sha256_hex(&token),
        None,
    )
    .await
    .unwrap();
    app.clock.advance(Duration::from_secs(86_400 * 365));
    let answer = introspect(&app, &token, true).await;
    assert_eq!(answer["active"], true);
    assert!(answer.get("exp").is_none());
    assert!(answer.get("expires_in").is_none());
    assert!(scope_set(&answer).contains("urn:synapse:admin:*"));

    users::lock_user(&mut conn, &app.clock, alice.id)
        .await
        .unwrap();
    assert_eq!(
        introspect(&app, &token, true).await,
        json!({ "active": false })
    );
    users::unlock_user(&mut conn, alice.id).await.unwrap();
    assert_eq!(introspect(&app, &token, true).await["active"], true);
    compat::finish_compat_session(&mut conn, &app.clock, session.id)
        .await
        .unwrap();
    assert_eq!(
        introspect(&app, &token, true).await,
        json!({ "active": false })
    );
}

async fn device_set_includes_active_compat_devices(db: Database) {
    let app = TestApp::new(db).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    let mut body = password_body("alice", "correct horse");
    body["device_id"] = json!("COMPATDEV");
    login(&app, &body).await.assert_status(StatusCode::OK);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let devices = crate::jobs::device_set(&mut conn, alice.id).await.unwrap();
    assert_eq!(devices, set(&["COMPATDEV"]));
    let session = compat::list_active_compat_sessions(&mut conn, alice.id)
        .await
        .unwrap()
        .remove(0);
    compat::finish_compat_session(&mut conn, &app.clock, session.id)
        .await
        .unwrap();
    assert!(
        crate::jobs::device_set(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

test_on_both_backends!(
    compat_tokens_introspect_as_legacy_with_device_scopes_or_field,
    non_expiring_and_admin_tokens_introspect_until_the_user_is_locked,
    device_set_includes_active_compat_devices,
);
