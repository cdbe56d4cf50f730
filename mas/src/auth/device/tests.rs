//! [`provision_device`](super::provision_device) against the mock homeserver.

use super::provision_device;
use crate::homeserver::{MockCall, MockFailure, MockHomeserver, MockUser, ProvisionRequest};

fn upsert(device: &str, name: Option<&str>) -> MockCall {
    MockCall::UpsertDevice(
        "alice".to_owned(),
        device.to_owned(),
        name.map(str::to_owned),
    )
}

#[tokio::test]
async fn a_known_user_gets_the_device_in_one_call() {
    let homeserver = MockHomeserver::new("example.com");
    homeserver.insert_user("alice", MockUser::default());
    provision_device(&homeserver, "alice", "PHONE", Some("Element"))
        .await
        .unwrap();
    assert_eq!(homeserver.calls(), vec![upsert("PHONE", Some("Element"))]);
    assert!(homeserver.devices("alice").contains("PHONE"));
}

#[tokio::test]
async fn an_unknown_user_is_provisioned_then_the_upsert_is_tried_again() {
    let homeserver = MockHomeserver::new("example.com");
    provision_device(&homeserver, "alice", "PHONE", None)
        .await
        .unwrap();
    assert_eq!(
        homeserver.calls(),
        vec![
            upsert("PHONE", None),
            MockCall::ProvisionUser(ProvisionRequest::new("alice")),
            upsert("PHONE", None),
        ]
    );
    assert!(homeserver.devices("alice").contains("PHONE"));
}

#[tokio::test]
async fn a_homeserver_that_fails_is_a_device_error() {
    let homeserver = MockHomeserver::new("example.com");
    homeserver.insert_user("alice", MockUser::default());
    for failure in [MockFailure::Unreachable, MockFailure::ServerError] {
        homeserver.set_failure(Some(failure));
        let error = provision_device(&homeserver, "alice", "PHONE", None)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot create the device in the homeserver"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
    homeserver.set_failure(None);
    assert!(!homeserver.devices("alice").contains("PHONE"));
}
