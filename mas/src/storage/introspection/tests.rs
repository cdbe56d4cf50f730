//! Tests of the introspection join, on both backends: it returns the right token, session
//! and user, including states the endpoint must treat as inactive.

use std::time::Duration;

use super::*;
use crate::clock::Clock as _;
use crate::storage::testing::{migrated, test_on_both_backends};
use crate::storage::{Database, access_tokens, oauth2_sessions, refresh_tokens, users};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_R: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

async fn access_token_comes_with_its_session_and_user(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let admin = users::set_can_request_admin(&mut t.conn, alice.id, true)
        .await
        .unwrap()
        .unwrap();
    let client = t.client().await;
    let scope = "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";
    let session = t.oauth2_session(&client, Some(&alice), scope).await;
    let other = t.oauth2_session(&client, Some(&bob), "openid").await;
    let ttl = Some(Duration::from_secs(300));
    let token =
        access_tokens::add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, ttl)
            .await
            .unwrap();
    access_tokens::add_access_token(&mut t.conn, &t.clock, &mut t.rng, other.id, SHA_B, ttl)
        .await
        .unwrap();

    let found = lookup_access_token_for_introspection(&mut t.conn, SHA_A)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token, token);
    assert_eq!(found.session, session);
    assert_eq!(found.session.client_id, client.id);
    assert_eq!(found.user, Some(admin));
    assert_eq!(found.session.scope.device_id(), Some("ABCDEFGHIJ"));

    let bobs = lookup_access_token_for_introspection(&mut t.conn, SHA_B)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bobs.user, Some(bob));
    assert_eq!(
        lookup_access_token_for_introspection(&mut t.conn, SHA_R)
            .await
            .unwrap(),
        None
    );
}

async fn inactive_states_are_returned_for_the_endpoint_to_judge(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let ttl = Some(Duration::from_secs(300));
    let token =
        access_tokens::add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, ttl)
            .await
            .unwrap();
    t.clock.advance(Duration::from_secs(301));
    access_tokens::revoke_access_token(&mut t.conn, &t.clock, token.id)
        .await
        .unwrap();
    oauth2_sessions::finish_oauth2_session(&mut t.conn, &t.clock, session.id)
        .await
        .unwrap();
    users::lock_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap();
    users::deactivate_user(&mut t.conn, &t.clock, alice.id)
        .await
        .unwrap();

    let found = lookup_access_token_for_introspection(&mut t.conn, SHA_A)
        .await
        .unwrap()
        .unwrap();
    let now = t.clock.now_unix_ms();
    assert!(!found.token.is_valid(now));
    assert_eq!(found.token.revoked_at, Some(now));
    assert_eq!(found.session.finished_at, Some(now));
    let user = found.user.unwrap();
    assert_eq!(
        (user.locked_at, user.deactivated_at),
        (Some(now), Some(now))
    );
}

async fn client_credentials_token_has_no_user(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, None, "urn:mas:admin").await;
    access_tokens::add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
        .await
        .unwrap();
    let found = lookup_access_token_for_introspection(&mut t.conn, SHA_A)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, None);
    assert_eq!(found.session, session);
}

async fn refresh_token_comes_with_its_session_and_user(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let client = t.client().await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let access =
        access_tokens::add_access_token(&mut t.conn, &t.clock, &mut t.rng, session.id, SHA_A, None)
            .await
            .unwrap();
    let token = refresh_tokens::add_refresh_token(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        session.id,
        Some(access.id),
        SHA_R,
    )
    .await
    .unwrap();

    let found = lookup_refresh_token_for_introspection(&mut t.conn, SHA_R)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token, token);
    assert_eq!(found.session, session);
    assert_eq!(found.user, Some(alice));
    assert_eq!(
        lookup_refresh_token_for_introspection(&mut t.conn, SHA_A)
            .await
            .unwrap(),
        None
    );
}

test_on_both_backends!(
    access_token_comes_with_its_session_and_user,
    inactive_states_are_returned_for_the_endpoint_to_judge,
    client_credentials_token_has_no_user,
    refresh_token_comes_with_its_session_and_user,
);
