use super::*;
use crate::homeserver::CALL_TIMEOUT;

fn alice_request() -> ProvisionRequest {
    ProvisionRequest {
        display_name: FieldAction::Set("Alice".to_owned()),
        emails: FieldAction::Set(vec!["alice@example.com".to_owned()]),
        ..ProvisionRequest::new("alice")
    }
}

#[tokio::test]
async fn provision_creates_then_updates_like_synapse() {
    let hs = MockHomeserver::new("example.com");
    assert_eq!(
        hs.provision_user(&ProvisionRequest::new("bob"))
            .await
            .unwrap(),
        Upserted::Created
    );
    assert_eq!(hs.user("bob").unwrap().display_name.as_deref(), Some("bob"));
    assert_eq!(
        hs.provision_user(&alice_request()).await.unwrap(),
        Upserted::Created
    );
    let update = ProvisionRequest {
        display_name: FieldAction::Unset,
        emails: FieldAction::Unset,
        locked: Some(true),
        ..ProvisionRequest::new("alice")
    };
    assert_eq!(hs.provision_user(&update).await.unwrap(), Upserted::Updated);
    let alice = hs.user("alice").unwrap();
    assert_eq!(alice.display_name, None);
    assert!(alice.emails.is_empty());
    assert!(alice.locked);
    let user = hs.query_user("alice", CALL_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(user.user_id, "@alice:example.com");
    assert_eq!(hs.query_user("nobody", CALL_TIMEOUT).await.unwrap(), None);
}

#[tokio::test]
async fn devices_follow_upserts_deletes_and_syncs() {
    let hs = MockHomeserver::new("example.com");
    hs.provision_user(&alice_request()).await.unwrap();
    assert_eq!(
        hs.upsert_device("alice", "DEV1", Some("phone"))
            .await
            .unwrap(),
        Upserted::Created
    );
    assert_eq!(
        hs.upsert_device("alice", "DEV1", None).await.unwrap(),
        Upserted::Updated
    );
    assert_eq!(
        hs.user("alice").unwrap().devices["DEV1"].as_deref(),
        Some("phone")
    );
    hs.upsert_device("alice", "DEV2", None).await.unwrap();
    let wanted: BTreeSet<String> = ["DEV2".to_owned(), "DEV3".to_owned()].into();
    hs.sync_devices("alice", &wanted).await.unwrap();
    assert_eq!(hs.devices("alice"), wanted);
    hs.delete_device("alice", "DEV2").await.unwrap();
    hs.delete_device("alice", "DEV2").await.unwrap();
    assert_eq!(hs.devices("alice"), ["DEV3".to_owned()].into());
    let error = hs.upsert_device("nobody", "X", None).await.unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.errcode(), Some("M_NOT_FOUND"));
    let error = hs
        .update_device_display_name("alice", "NOPE", "x")
        .await
        .unwrap_err();
    assert!(error.is_not_found());
}

#[tokio::test]
async fn availability_applies_synapse_username_rules() {
    let hs = MockHomeserver::new("example.com");
    hs.provision_user(&alice_request()).await.unwrap();
    hs.reserve_localpart("irc_bridge");
    assert!(hs.is_localpart_available("carol").await.unwrap());
    for taken_or_invalid in ["alice", "irc_bridge", "Carol", "_x", "1234", "", "caröl"] {
        assert!(
            !hs.is_localpart_available(taken_or_invalid).await.unwrap(),
            "{taken_or_invalid:?} should be unavailable"
        );
    }
    // Non-ASCII is refused without asking.
    assert!(
        !hs.calls()
            .contains(&MockCall::IsLocalpartAvailable("caröl".to_owned()))
    );
}

#[tokio::test]
async fn every_call_is_recorded_even_when_failing() {
    let hs = MockHomeserver::new("example.com");
    hs.set_failure(Some(MockFailure::Unreachable));
    let error = hs.set_displayname("alice", "A").await.unwrap_err();
    assert!(error.is_transient());
    hs.set_failure(Some(MockFailure::ServerError));
    assert!(
        hs.reactivate_user("alice")
            .await
            .unwrap_err()
            .is_transient()
    );
    hs.set_failure(None);
    hs.provision_user(&alice_request()).await.unwrap();
    hs.set_displayname("alice", "A").await.unwrap();
    hs.unset_displayname("alice").await.unwrap();
    hs.allow_cross_signing_reset("alice").await.unwrap();
    hs.delete_user("alice", true).await.unwrap();
    let alice = hs.user("alice").unwrap();
    assert!(alice.deactivated && alice.erased && alice.cross_signing_reset_allowed);
    hs.reactivate_user("alice").await.unwrap();
    assert!(!hs.user("alice").unwrap().deactivated);
    let calls = hs.take_calls();
    assert_eq!(calls.len(), 8);
    assert_eq!(
        calls[0],
        MockCall::SetDisplayname("alice".to_owned(), "A".to_owned())
    );
    assert_eq!(
        calls[5],
        MockCall::AllowCrossSigningReset("alice".to_owned())
    );
    assert!(hs.calls().is_empty());
}

#[test]
fn the_trait_is_object_safe() {
    let hs: std::sync::Arc<dyn HomeserverConnection> =
        std::sync::Arc::new(MockHomeserver::new("example.com"));
    assert_eq!(hs.mxid("alice"), "@alice:example.com");
}
