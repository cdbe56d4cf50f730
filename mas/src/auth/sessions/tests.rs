//! Ending each kind of session without HTTP ([`SessionEnder`], [`end_browser_session`],
//! [`end_all_sessions`]), on both backends.

use axum::extract::FromRef;

use super::{
    EndedSessions, SessionHandles, end_all_sessions, end_browser_session, end_other_sessions,
};
use crate::app::testing::oauth::{ApiApp, DEVICE, MATRIX_SCOPE};
use crate::homeserver::{HomeserverConnection as _, MockCall, MockFailure};
use crate::model::{CompatSession, NewSession, User};
use crate::storage::compat::{self, NewCompatSession};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, oauth2_sessions};

async fn an_oauth_device_still_held_by_another_session_is_kept(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let client = app.public_client().await;
    app.homeserver
        .upsert_device("alice", DEVICE, None)
        .await
        .unwrap();
    let mut rng = app.state.rng.fork();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let new = NewSession {
            client_id: client.id,
            user_id: Some(user.id),
            user_session_id: None,
            scope: MATRIX_SCOPE.parse().unwrap(),
            user_agent: None,
            human_name: None,
        };
        let session = oauth2_sessions::create_oauth2_session(
            &mut *app.conn().await,
            &app.clock,
            &mut rng,
            new,
        )
        .await
        .unwrap();
        ids.push(session.id);
    }
    let handles = SessionHandles::from_ref(&app.state);
    let ender = handles.ender();
    assert!(ender.end_oauth2_session(ids[0]).await.unwrap());
    assert!(app.homeserver.devices("alice").contains(DEVICE));
    assert!(
        !ender.end_oauth2_session(ids[0]).await.unwrap(),
        "already ended"
    );
    assert!(ender.end_oauth2_session(ids[1]).await.unwrap());
    assert!(!app.homeserver.devices("alice").contains(DEVICE));
    let deletions = app
        .homeserver
        .calls()
        .into_iter()
        .filter(|call| matches!(call, MockCall::DeleteDevice(..)))
        .count();
    assert_eq!(deletions, 1);
    assert!(
        !ender.end_oauth2_session(ulid::Ulid::nil()).await.unwrap(),
        "unknown session"
    );
}

/// The sync-devices jobs queued so far.
async fn queued_syncs(app: &ApiApp) -> usize {
    let jobs: Vec<(String,)> = sqlx::query_as("SELECT queue_name FROM queue_jobs")
        .fetch_all(&mut *app.conn().await)
        .await
        .unwrap();
    jobs.iter().filter(|(name,)| name == "sync-devices").count()
}

/// An active compat session of `user` on `device`.
async fn compat_session(app: &ApiApp, user: &User, device: &str) -> CompatSession {
    let mut rng = app.state.rng.fork();
    let new = NewCompatSession {
        user_id: user.id,
        device_id: device,
        user_session_id: None,
        is_synapse_admin: false,
        user_agent: None,
        human_name: None,
    };
    compat::add_compat_session(&mut *app.conn().await, &app.clock, &mut rng, new)
        .await
        .unwrap()
}

/// An active OAuth session of `user` with `scope`.
async fn oauth_session(app: &ApiApp, user: &User, scope: &str) -> ulid::Ulid {
    let client = app.public_client().await;
    let mut rng = app.state.rng.fork();
    let new = NewSession {
        client_id: client.id,
        user_id: Some(user.id),
        user_session_id: None,
        scope: scope.parse().unwrap(),
        user_agent: None,
        human_name: None,
    };
    oauth2_sessions::create_oauth2_session(&mut *app.conn().await, &app.clock, &mut rng, new)
        .await
        .unwrap()
        .id
}

async fn ending_compat_sessions_deletes_the_devices_no_session_holds(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    for device in ["PHONE", "LAPTOP", DEVICE] {
        app.homeserver
            .upsert_device("alice", device, None)
            .await
            .unwrap();
    }
    let phone = compat_session(&app, &user, "PHONE").await;
    let laptop = compat_session(&app, &user, "LAPTOP").await;
    let shared = compat_session(&app, &user, DEVICE).await;
    // An OAuth session holds the same device as `shared`.
    oauth_session(&app, &user, MATRIX_SCOPE).await;

    let handles = SessionHandles::from_ref(&app.state);
    let ender = handles.ender();
    ender
        .end_compat_sessions(&user, &[phone, laptop, shared])
        .await
        .unwrap();
    let mut conn = app.conn().await;
    assert!(
        compat::list_active_compat_sessions(&mut conn, user.id)
            .await
            .unwrap()
            .is_empty()
    );
    drop(conn);
    let devices = app.homeserver.devices("alice");
    assert!(!devices.contains("PHONE") && !devices.contains("LAPTOP"));
    assert!(devices.contains(DEVICE), "still held by the OAuth session");
    assert!(!app.homeserver.calls().contains(&MockCall::DeleteDevice(
        "alice".to_owned(),
        DEVICE.to_owned()
    )));
    assert_eq!(queued_syncs(&app).await, 1);
}

async fn a_failed_deletion_is_left_to_the_queued_sync(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let phone = compat_session(&app, &user, "PHONE").await;
    let oauth = oauth_session(&app, &user, MATRIX_SCOPE).await;
    app.homeserver.set_failure(Some(MockFailure::Unreachable));
    let handles = SessionHandles::from_ref(&app.state);
    let ender = handles.ender();
    ender.end_compat_sessions(&user, &[phone]).await.unwrap();
    assert!(ender.end_oauth2_session(oauth).await.unwrap());
    assert_eq!(queued_syncs(&app).await, 2);
    let mut conn = app.conn().await;
    let active = oauth2_sessions::list_active_oauth2_sessions(&mut conn, user.id)
        .await
        .unwrap();
    assert!(active.is_empty());
}

async fn an_oauth_session_without_a_device_ends_without_a_job(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let id = oauth_session(&app, &user, "openid").await;
    let handles = SessionHandles::from_ref(&app.state);
    let ender = handles.ender();
    assert!(ender.end_oauth2_session(id).await.unwrap());
    assert_eq!(queued_syncs(&app).await, 0);
    assert!(app.homeserver.calls().is_empty());
}

async fn a_browser_session_ends_once(db: Database) {
    let app = ApiApp::new(db).await;
    let user = app.user("alice").await;
    let browser = app.login(&user).await;
    let mut conn = app.conn().await;
    assert!(
        end_browser_session(&mut conn, &app.clock, browser.id)
            .await
            .unwrap()
    );
    assert!(
        !end_browser_session(&mut conn, &app.clock, browser.id)
            .await
            .unwrap()
    );
}

async fn all_of_a_users_sessions_end_in_the_callers_transaction(db: Database) {
    let app = ApiApp::new(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    oauth_session(&app, &alice, MATRIX_SCOPE).await;
    oauth_session(&app, &alice, "openid").await;
    compat_session(&app, &alice, "PHONE").await;
    app.login(&alice).await;
    oauth_session(&app, &bob, MATRIX_SCOPE).await;

    // Rolled back: nothing ended.
    let mut tx = app.state.db.begin_write().await.unwrap();
    let ended = end_all_sessions(&mut tx, &app.clock, alice.id)
        .await
        .unwrap();
    let expected = EndedSessions {
        oauth2: 2,
        compat: 1,
        browser: 1,
    };
    assert_eq!(ended, expected);
    assert_eq!(ended.total(), 4);
    tx.rollback().await.unwrap();

    let mut tx = app.state.db.begin_write().await.unwrap();
    let ended = end_all_sessions(&mut tx, &app.clock, alice.id)
        .await
        .unwrap();
    assert_eq!(ended, expected);
    tx.commit().await.unwrap();
    let mut tx = app.state.db.begin_write().await.unwrap();
    let again = end_all_sessions(&mut tx, &app.clock, alice.id)
        .await
        .unwrap();
    assert_eq!(again, EndedSessions::default());
    tx.commit().await.unwrap();
    let mut conn = app.conn().await;
    let bobs = oauth2_sessions::list_active_oauth2_sessions(&mut conn, bob.id)
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1, "another user's sessions live on");
    // Devices are the caller's business (its queued job): nothing was called.
    assert!(app.homeserver.calls().is_empty());
}

async fn other_sessions_end_but_the_kept_browser_session(db: Database) {
    let app = ApiApp::new(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    oauth_session(&app, &alice, MATRIX_SCOPE).await;
    compat_session(&app, &alice, "PHONE").await;
    let kept = app.login(&alice).await;
    app.login(&alice).await;
    let bobs = app.login(&bob).await;

    let mut tx = app.state.db.begin_write().await.unwrap();
    let ended = end_other_sessions(&mut tx, &app.clock, alice.id, kept.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let expected = EndedSessions {
        oauth2: 1,
        compat: 1,
        browser: 1,
    };
    assert_eq!(ended, expected);
    let mut conn = app.conn().await;
    for (id, alive) in [(kept.id, true), (bobs.id, true)] {
        let found = crate::storage::browser_sessions::find_active_browser_session(&mut conn, id)
            .await
            .unwrap();
        assert_eq!(found.is_some(), alive);
    }
    drop(conn);
    let mut tx = app.state.db.begin_write().await.unwrap();
    let again = end_other_sessions(&mut tx, &app.clock, alice.id, kept.id)
        .await
        .unwrap();
    assert_eq!(again, EndedSessions::default());
}

test_on_both_backends!(
    other_sessions_end_but_the_kept_browser_session,
    an_oauth_device_still_held_by_another_session_is_kept,
    ending_compat_sessions_deletes_the_devices_no_session_holds,
    a_failed_deletion_is_left_to_the_queued_sync,
    an_oauth_session_without_a_device_ends_without_a_job,
    a_browser_session_ends_once,
    all_of_a_users_sessions_end_in_the_callers_transaction,
);
