//! [`SessionEnder`](super::SessionEnder), on both backends.

use crate::homeserver::{HomeserverConnection as _, MockCall};
use crate::model::NewSession;
use crate::oauth2::SessionEnder;
use crate::oauth2::testing::{ApiApp, DEVICE, MATRIX_SCOPE};
use crate::storage::testing::test_on_both_backends;
use crate::storage::{Database, oauth2_sessions};

async fn a_device_still_held_by_another_session_is_kept(db: Database) {
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
    let ender = SessionEnder::from_state(&app.state);
    assert!(ender.end(ids[0]).await.unwrap());
    assert!(app.homeserver.devices("alice").contains(DEVICE));
    assert!(!ender.end(ids[0]).await.unwrap(), "already ended");
    assert!(ender.end(ids[1]).await.unwrap());
    assert!(!app.homeserver.devices("alice").contains(DEVICE));
    let deletions = app
        .homeserver
        .calls()
        .into_iter()
        .filter(|call| matches!(call, MockCall::DeleteDevice(..)))
        .count();
    assert_eq!(deletions, 1);
    assert!(
        !ender.end(ulid::Ulid::nil()).await.unwrap(),
        "unknown session"
    );
}

test_on_both_backends!(a_device_still_held_by_another_session_is_kept);
