//! The JSON bodies of `/_synapse/mas/*` (docs/protocol.md#calls-to-synapse). Synapse validates
//! strictly: a `set_x` next to its `unset_x` is refused even when false, so absent fields are
//! omitted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::homeserver::{FieldAction, ProvisionRequest};

/// `provision_user`.
#[derive(Debug, Serialize)]
pub(super) struct ProvisionUser<'a> {
    localpart: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_displayname: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    unset_displayname: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_avatar_url: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    unset_avatar_url: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_emails: Option<&'a [String]>,
    #[serde(skip_serializing_if = "is_false")]
    unset_emails: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked: Option<bool>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The `set_x` value and the `unset_x` flag of one field.
fn split<T: ?Sized, U: AsRef<T>>(action: &FieldAction<U>) -> (Option<&T>, bool) {
    match action {
        FieldAction::Keep => (None, false),
        FieldAction::Set(value) => (Some(value.as_ref()), false),
        FieldAction::Unset => (None, true),
    }
}

impl<'a> From<&'a ProvisionRequest> for ProvisionUser<'a> {
    fn from(request: &'a ProvisionRequest) -> Self {
        let (set_displayname, unset_displayname) = split::<str, _>(&request.display_name);
        let (set_avatar_url, unset_avatar_url) = split::<str, _>(&request.avatar_url);
        let (set_emails, unset_emails) = split::<[String], _>(&request.emails);
        Self {
            localpart: &request.localpart,
            set_displayname,
            unset_displayname,
            set_avatar_url,
            unset_avatar_url,
            set_emails,
            unset_emails,
            locked: request.locked,
        }
    }
}

/// `upsert_device`, `update_device_display_name`, `delete_device`.
#[derive(Debug, Serialize)]
pub(super) struct Device<'a> {
    pub(super) localpart: &'a str,
    pub(super) device_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) display_name: Option<&'a str>,
}

/// `sync_devices`.
#[derive(Debug, Serialize)]
pub(super) struct SyncDevices<'a> {
    pub(super) localpart: &'a str,
    pub(super) devices: &'a BTreeSet<String>,
}

/// `delete_user`.
#[derive(Debug, Serialize)]
pub(super) struct DeleteUser<'a> {
    pub(super) localpart: &'a str,
    pub(super) erase: bool,
}

/// `set_displayname`.
#[derive(Debug, Serialize)]
pub(super) struct SetDisplayname<'a> {
    pub(super) localpart: &'a str,
    pub(super) displayname: &'a str,
}

/// `reactivate_user`, `unset_displayname`, `allow_cross_signing_reset`.
#[derive(Debug, Serialize)]
pub(super) struct Localpart<'a> {
    pub(super) localpart: &'a str,
}

/// A Matrix error body, read leniently (an HTML error page gives neither field).
#[derive(Debug, Default, Deserialize)]
pub(super) struct MatrixError {
    pub(super) errcode: Option<String>,
    pub(super) error: Option<String>,
}

impl MatrixError {
    pub(super) fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}
