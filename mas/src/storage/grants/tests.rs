//! Tests of `grants`, on both backends, including two exchanges racing in two transactions.

use std::time::Duration;

use super::*;
use crate::model::{
    AUTHORIZATION_CODE_LIFETIME_MS, CodeChallengeMethod, GrantStage, ResponseMode, Session,
};
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

const CODE_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn request(client_id: Ulid) -> NewAuthorizationGrant {
    NewAuthorizationGrant {
        client_id,
        redirect_uri: "io.element.app:/callback".parse().unwrap(),
        redirect_uri_explicit: true,
        scope: "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ"
            .parse()
            .unwrap(),
        state: Some("xyz".to_owned()),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        response_mode: ResponseMode::Fragment,
        response_type_code: true,
        response_type_id_token: false,
        code_challenge: Some(CodeChallenge {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            method: CodeChallengeMethod::S256,
        }),
        login_hint: Some("mxid:@alice:example.com".to_owned()),
        prompt: Some("consent".to_owned()),
    }
}

/// A pending grant, a browser session of alice and a session to exchange into.
async fn setup(t: &mut TestDb) -> (AuthorizationGrant, Ulid, Session) {
    let alice = t.user("alice").await;
    let client = t.client().await;
    let browser = t.browser_session(&alice).await;
    let session = t.oauth2_session(&client, Some(&alice), "openid").await;
    let grant = create_authorization_grant(&mut t.conn, &t.clock, &mut t.rng, request(client.id))
        .await
        .unwrap();
    (grant, browser.id, session)
}

async fn created_grant_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let (grant, _, _) = setup(&mut t).await;
    assert_eq!(grant.stage(), GrantStage::Pending);
    assert_eq!(
        find_authorization_grant(&mut t.conn, grant.id)
            .await
            .unwrap(),
        Some(grant.clone())
    );

    let client_id = grant.request.client_id;
    let mut bare = request(client_id);
    bare.state = None;
    bare.nonce = None;
    bare.code_challenge = None;
    bare.login_hint = None;
    bare.prompt = None;
    bare.redirect_uri_explicit = false;
    bare.response_mode = ResponseMode::FormPost;
    bare.response_type_id_token = true;
    let stored = create_authorization_grant(&mut t.conn, &t.clock, &mut t.rng, bare.clone())
        .await
        .unwrap();
    let found = find_authorization_grant(&mut t.conn, stored.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.request, bare);
    assert_eq!(
        find_authorization_grant(&mut t.conn, Ulid::nil())
            .await
            .unwrap(),
        None
    );
}

async fn grants_stored_before_migration_0013_did_not_carry_redirect_uri(db: Database) {
    let mut t = migrated(db).await;
    let client = t.client().await;
    let id = Ulid::from_parts(1, 2);
    // An insert that does not know the column, as before migration 0013.
    sqlx::query(
        "INSERT INTO oauth2_authorization_grants \
         (oauth2_authorization_grant_id, oauth2_client_id, redirect_uri, scope, response_mode, \
          response_type_code, response_type_id_token, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(client.id.to_string())
    .bind("io.element.app:/callback")
    .bind("openid")
    .bind("query")
    .bind(true)
    .bind(false)
    .bind(0_i64)
    .execute(&mut *t.conn)
    .await
    .unwrap();
    let found = find_authorization_grant(&mut t.conn, id)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.request.redirect_uri_explicit);
}

async fn fulfilment_sets_the_code_once(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, _) = setup(&mut t).await;
    t.clock.advance(Duration::from_secs(20));
    assert!(
        fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, Some(CODE_SHA))
            .await
            .unwrap()
    );
    let found = find_authorization_grant_by_code(&mut t.conn, CODE_SHA)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, grant.id);
    assert_eq!(found.stage(), GrantStage::Fulfilled);
    assert_eq!(found.user_session_id, Some(browser_id));
    let fulfilled_at = t.clock.now_unix_ms();
    assert_eq!(found.fulfilled_at, Some(fulfilled_at));
    assert!(!found.code_expired(fulfilled_at + AUTHORIZATION_CODE_LIFETIME_MS));
    assert!(found.code_expired(fulfilled_at + AUTHORIZATION_CODE_LIFETIME_MS + 1));

    assert!(
        !fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, None)
            .await
            .unwrap()
    );
    assert_eq!(
        find_authorization_grant_by_code(&mut t.conn, "0".repeat(64).as_str())
            .await
            .unwrap(),
        None
    );
}

async fn code_hash_collision_is_token_collision(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, _) = setup(&mut t).await;
    let other =
        create_authorization_grant(&mut t.conn, &t.clock, &mut t.rng, grant.request.clone())
            .await
            .unwrap();
    fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, Some(CODE_SHA))
        .await
        .unwrap();
    let error =
        fulfill_authorization_grant(&mut t.conn, &t.clock, other.id, browser_id, Some(CODE_SHA))
            .await
            .unwrap_err();
    assert!(matches!(error, StorageError::TokenCollision), "{error:?}");
}

async fn exchange_needs_fulfilment_and_happens_once(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    assert!(
        !exchange_authorization_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, Some(CODE_SHA))
        .await
        .unwrap();
    t.clock.advance(Duration::from_secs(3));
    assert!(
        exchange_authorization_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    assert!(
        !exchange_authorization_grant(&mut t.conn, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    let found = find_authorization_grant_by_code(&mut t.conn, CODE_SHA)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.stage(), GrantStage::Exchanged);
    assert_eq!(found.session_id, Some(session.id));
    assert_eq!(found.exchanged_at, Some(t.clock.now_unix_ms()));
}

async fn concurrent_exchanges_have_exactly_one_winner(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, Some(CODE_SHA))
        .await
        .unwrap();

    let mut first = t.db.pool().begin().await.unwrap();
    assert!(
        exchange_authorization_grant(&mut first, &t.clock, grant.id, session.id)
            .await
            .unwrap()
    );
    // The second exchange runs while the first transaction is still open: it waits for the
    // row (PostgreSQL) or the write lock (SQLite), then sees the grant exchanged.
    let pool = t.db.pool().clone();
    let clock = t.clock.clone();
    let (grant_id, session_id) = (grant.id, session.id);
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let won = exchange_authorization_grant(&mut tx, &clock, grant_id, session_id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        won
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
}

async fn cancel_only_before_exchange(db: Database) {
    let mut t = migrated(db).await;
    let (grant, browser_id, session) = setup(&mut t).await;
    assert!(
        cancel_authorization_grant(&mut t.conn, &t.clock, grant.id)
            .await
            .unwrap()
    );
    assert!(
        !cancel_authorization_grant(&mut t.conn, &t.clock, grant.id)
            .await
            .unwrap()
    );
    let found = find_authorization_grant(&mut t.conn, grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.stage(), GrantStage::Cancelled);
    assert!(
        !fulfill_authorization_grant(&mut t.conn, &t.clock, grant.id, browser_id, None)
            .await
            .unwrap()
    );

    let other = create_authorization_grant(&mut t.conn, &t.clock, &mut t.rng, grant.request)
        .await
        .unwrap();
    fulfill_authorization_grant(&mut t.conn, &t.clock, other.id, browser_id, None)
        .await
        .unwrap();
    exchange_authorization_grant(&mut t.conn, &t.clock, other.id, session.id)
        .await
        .unwrap();
    assert!(
        !cancel_authorization_grant(&mut t.conn, &t.clock, other.id)
            .await
            .unwrap()
    );
}

test_on_both_backends!(
    grants_stored_before_migration_0013_did_not_carry_redirect_uri,
    created_grant_round_trips,
    fulfilment_sets_the_code_once,
    code_hash_collision_is_token_collision,
    exchange_needs_fulfilment_and_happens_once,
    concurrent_exchanges_have_exactly_one_winner,
    cancel_only_before_exchange,
);
