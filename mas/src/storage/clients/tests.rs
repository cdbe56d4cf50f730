//! Tests of `clients`, on both backends.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::model::{ApplicationType, ClientAuthMethod};
use crate::storage::Database;
use crate::storage::testing::fixtures::native_client_metadata;
use crate::storage::testing::{migrated, test_on_both_backends};

/// Metadata with every optional field set, to check each column round-trips.
fn full_metadata() -> ClientMetadata {
    ClientMetadata {
        redirect_uris: vec![
            "https://app.example.com/cb".parse().unwrap(),
            "http://127.0.0.1/callback".parse().unwrap(),
        ],
        grant_types: GrantTypes {
            authorization_code: true,
            refresh_token: false,
            client_credentials: true,
            device_code: true,
        },
        client_name: Some("Example".to_owned()),
        logo_uri: Some("https://app.example.com/logo.png".parse().unwrap()),
        client_uri: Some("https://app.example.com/".parse().unwrap()),
        policy_uri: Some("https://app.example.com/policy".parse().unwrap()),
        tos_uri: Some("https://app.example.com/tos".parse().unwrap()),
        jwks_uri: Some("https://app.example.com/jwks".parse().unwrap()),
        jwks: Some(json!({"keys": [{"kty": "EC", "crv": "P-256"}]})),
        id_token_signed_response_alg: Some("ES256".to_owned()),
        userinfo_signed_response_alg: Some("RS256".to_owned()),
        token_endpoint_auth_method: ClientAuthMethod::ClientSecretBasic,
        token_endpoint_auth_signing_alg: Some("HS256".to_owned()),
        initiate_login_uri: Some("https://app.example.com/login".parse().unwrap()),
        application_type: Some(ApplicationType::Web),
        contacts: vec!["admin@example.com".to_owned()],
    }
}

async fn added_client_round_trips_every_field(db: Database) {
    let mut t = migrated(db).await;
    let client = add_client(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        Some("encrypted".to_owned()),
        full_metadata(),
        Some("digest-a".to_owned()),
    )
    .await
    .unwrap();
    assert!(!client.is_public() && !client.is_static);
    assert_eq!(
        find_client(&mut t.conn, client.id).await.unwrap(),
        Some(client.clone())
    );

    let public = t.client().await;
    assert!(public.is_public());
    let found = find_client(&mut t.conn, public.id).await.unwrap().unwrap();
    assert_eq!(found.metadata, native_client_metadata());
    assert!(found.has_redirect_uri(&"io.element.app:/callback".parse().unwrap()));
    assert_eq!(find_client(&mut t.conn, Ulid::nil()).await.unwrap(), None);
}

async fn same_digest_is_duplicate_client_metadata_and_found_by_digest(db: Database) {
    let mut t = migrated(db).await;
    let digest = Some("a".repeat(64));
    let first = add_client(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        None,
        native_client_metadata(),
        digest.clone(),
    )
    .await
    .unwrap();
    let error = add_client(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        None,
        native_client_metadata(),
        digest,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, StorageError::DuplicateClientMetadata),
        "{error:?}"
    );

    let found = find_client_by_metadata_digest(&mut t.conn, &"a".repeat(64))
        .await
        .unwrap();
    assert_eq!(found, Some(first));
    assert_eq!(
        find_client_by_metadata_digest(&mut t.conn, "other")
            .await
            .unwrap(),
        None
    );

    // Clients without a digest are never deduplicated.
    t.client().await;
    t.client().await;
}

async fn static_client_upsert_replaces_metadata_and_keeps_created_at(db: Database) {
    let mut t = migrated(db).await;
    let id: Ulid = "01J0000000000000000SYNAPSE".parse().unwrap();
    let created = upsert_static_client(
        &mut t.conn,
        &t.clock,
        id,
        Some("secret-1".to_owned()),
        full_metadata(),
    )
    .await
    .unwrap();
    assert!(created.is_static);
    assert_eq!(
        find_client(&mut t.conn, id).await.unwrap(),
        Some(created.clone())
    );

    t.clock.advance(Duration::from_secs(3600));
    let mut changed = native_client_metadata();
    changed.client_name = Some("Renamed".to_owned());
    let updated = upsert_static_client(&mut t.conn, &t.clock, id, None, changed.clone())
        .await
        .unwrap();
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.metadata, changed);
    assert_eq!(updated.encrypted_client_secret, None);
    assert_eq!(find_client(&mut t.conn, id).await.unwrap(), Some(updated));
}

test_on_both_backends!(
    added_client_round_trips_every_field,
    same_digest_is_duplicate_client_metadata_and_found_by_digest,
    static_client_upsert_replaces_metadata_and_keeps_created_at,
);
