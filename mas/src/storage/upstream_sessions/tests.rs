//! Tests of `upstream_oauth_authorization_sessions`, on both backends: round trip, unique
//! state, completion once and consumption once.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};
use crate::storage::upstream_links::{self, NewUpstreamLink};

const PROVIDER: &str = "01J00000000000000000PR0V1D";

async fn pending(t: &mut TestDb, state: &str) -> UpstreamSession {
    let action =
        json!({ "kind": "continue_authorization_grant", "id": "01J0000000000000000000GRNT" });
    add_upstream_session(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewUpstreamSession {
            provider_id: PROVIDER,
            state,
            nonce: "nonce-1",
            code_verifier: Some("verifier-1"),
            post_auth_action: Some(&action),
        },
    )
    .await
    .unwrap()
}

async fn link(t: &mut TestDb) -> Ulid {
    upstream_links::add_upstream_link(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewUpstreamLink {
            provider_id: PROVIDER,
            subject: "sub-1",
            user_id: None,
            human_account_name: None,
        },
    )
    .await
    .unwrap()
    .id
}

fn claims() -> Map<String, Value> {
    json!({ "sub": "sub-1", "preferred_username": "alice", "email_verified": true })
        .as_object()
        .unwrap()
        .clone()
}

async fn created_session_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let session = pending(&mut t, "state-1").await;
    assert!(session.is_pending());
    assert_eq!(session.code_verifier.as_deref(), Some("verifier-1"));
    assert_eq!(
        session.post_auth_action.as_ref().unwrap()["kind"],
        "continue_authorization_grant"
    );
    assert_eq!(
        find_upstream_session(&mut t.conn, session.id)
            .await
            .unwrap(),
        Some(session)
    );
    assert_eq!(
        find_upstream_session(&mut t.conn, Ulid::nil())
            .await
            .unwrap(),
        None
    );

    let bare = add_upstream_session(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewUpstreamSession {
            provider_id: PROVIDER,
            state: "state-2",
            nonce: "nonce-2",
            code_verifier: None,
            post_auth_action: None,
        },
    )
    .await
    .unwrap();
    let found = find_upstream_session(&mut t.conn, bare.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.code_verifier, None);
    assert_eq!(found.post_auth_action, None);
}

async fn a_state_is_used_once(db: Database) {
    let mut t = migrated(db).await;
    pending(&mut t, "state-1").await;
    let error = add_upstream_session(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        NewUpstreamSession {
            provider_id: PROVIDER,
            state: "state-1",
            nonce: "nonce-2",
            code_verifier: None,
            post_auth_action: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

async fn completion_and_consumption_happen_once(db: Database) {
    let mut t = migrated(db).await;
    let session = pending(&mut t, "state-1").await;
    let link_id = link(&mut t).await;
    assert!(
        !consume_upstream_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap(),
        "not completed yet"
    );
    t.clock.advance(Duration::from_secs(3));
    let claims = claims();
    let userinfo = json!({ "sub": "sub-1", "name": "Alice" })
        .as_object()
        .unwrap()
        .clone();
    let completion = UpstreamCompletion {
        link_id,
        id_token: "eyJ.a.b",
        id_token_claims: &claims,
        userinfo: Some(&userinfo),
    };
    assert!(
        complete_upstream_session(&mut t.conn, &t.clock, session.id, completion)
            .await
            .unwrap()
    );
    assert!(
        !complete_upstream_session(&mut t.conn, &t.clock, session.id, completion)
            .await
            .unwrap(),
        "replayed callback"
    );
    let found = find_upstream_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_completed());
    assert_eq!(found.completed_at, Some(t.clock.now_unix_ms()));
    assert_eq!(found.link_id, Some(link_id));
    assert_eq!(found.id_token.as_deref(), Some("eyJ.a.b"));
    assert_eq!(found.id_token_claims, Some(claims.clone()));
    assert_eq!(found.userinfo.as_ref(), Some(&userinfo));

    t.clock.advance(Duration::from_secs(1));
    assert!(
        consume_upstream_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    assert!(
        !consume_upstream_session(&mut t.conn, &t.clock, session.id)
            .await
            .unwrap()
    );
    let found = find_upstream_session(&mut t.conn, session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.is_completed());
    assert_eq!(found.consumed_at, Some(t.clock.now_unix_ms()));

    // Without userinfo the column stays empty.
    let other = pending(&mut t, "state-2").await;
    let completion = UpstreamCompletion {
        userinfo: None,
        ..completion
    };
    complete_upstream_session(&mut t.conn, &t.clock, other.id, completion)
        .await
        .unwrap();
    let found = find_upstream_session(&mut t.conn, other.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.userinfo, None);
}

test_on_both_backends!(
    created_session_round_trips,
    a_state_is_used_once,
    completion_and_consumption_happen_once,
);
