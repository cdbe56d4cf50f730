//! The `refresh_token` grant through the real router, on both backends.

use std::time::Duration;

use axum::http::StatusCode;

use crate::app::testing::TestResponse;
use crate::app::testing::oauth::{ApiApp, DEVICE, MATRIX_SCOPE, Tokens};
use crate::crypto::sha256_hex;
use crate::homeserver::MockCall;
use crate::model::{Client, RefreshToken, Session};
use crate::oauth2::token::tests::error_of;
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, access_tokens, oauth2_sessions, refresh_tokens, users};

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
    replay: &TestResponse,
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

test_on_both_backends!(
    refresh_rotates_the_pair_and_revokes_the_old_access_token,
    a_lost_refresh_response_can_be_replayed_until_the_successor_is_used,
    refresh_token_reuse_after_the_successor_was_used_revokes_the_session,
    refresh_token_reuse_after_the_successor_was_refreshed_revokes_the_session,
    refresh_is_refused_for_other_clients_ended_sessions_and_locked_users,
);
