//! [`MockHomeserver`]: an in-memory homeserver for tests. It keeps users and devices the way
//! Synapse would, records every call (also the failed ones), and can be told to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    FieldAction, HomeserverConnection, HomeserverError, HomeserverUser, ProvisionRequest, Upserted,
    is_ascii_localpart,
};

/// One user as the mock stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockUser {
    /// The profile display name.
    pub display_name: Option<String>,
    /// The profile avatar URL.
    pub avatar_url: Option<String>,
    /// Email 3PIDs.
    pub emails: BTreeSet<String>,
    /// The locked flag.
    pub locked: bool,
    /// Deactivated by `delete_user`.
    pub deactivated: bool,
    /// Erased by `delete_user` with `erase`.
    pub erased: bool,
    /// Cross-signing reset allowed (`allow_cross_signing_reset` was called).
    pub cross_signing_reset_allowed: bool,
    /// Device ID → display name.
    pub devices: BTreeMap<String, Option<String>>,
}

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockCall {
    /// `query_user`.
    QueryUser(String),
    /// `is_localpart_available`.
    IsLocalpartAvailable(String),
    /// `provision_user`.
    ProvisionUser(ProvisionRequest),
    /// `upsert_device`: localpart, device ID, display name.
    UpsertDevice(String, String, Option<String>),
    /// `update_device_display_name`: localpart, device ID, display name.
    UpdateDeviceDisplayName(String, String, String),
    /// `delete_device`: localpart, device ID.
    DeleteDevice(String, String),
    /// `sync_devices`: localpart, device IDs.
    SyncDevices(String, BTreeSet<String>),
    /// `delete_user`: localpart, erase.
    DeleteUser(String, bool),
    /// `reactivate_user`.
    ReactivateUser(String),
    /// `set_displayname`: localpart, display name.
    SetDisplayname(String, String),
    /// `unset_displayname`.
    UnsetDisplayname(String),
    /// `allow_cross_signing_reset`.
    AllowCrossSigningReset(String),
}

/// How the mock fails while told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFailure {
    /// As if Synapse were down.
    Unreachable,
    /// As if Synapse hung.
    Timeout,
    /// A 500 without a Matrix body.
    ServerError,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, MockUser>,
    calls: Vec<MockCall>,
    /// Localparts `is_localpart_available` reports as taken (an appservice namespace…).
    reserved: BTreeSet<String>,
    failure: Option<MockFailure>,
}

/// An in-memory homeserver that records calls.
#[derive(Debug)]
pub struct MockHomeserver {
    homeserver: String,
    state: Mutex<State>,
}

impl MockHomeserver {
    /// An empty homeserver named `homeserver`.
    pub fn new(homeserver: impl Into<String>) -> Self {
        Self {
            homeserver: homeserver.into(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the state from others.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<MockCall> {
        self.lock().calls.clone()
    }

    /// Every call so far, forgetting them.
    pub fn take_calls(&self) -> Vec<MockCall> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The stored user, if any.
    pub fn user(&self, localpart: &str) -> Option<MockUser> {
        self.lock().users.get(localpart).cloned()
    }

    /// The user's device IDs (empty for an unknown user).
    pub fn devices(&self, localpart: &str) -> BTreeSet<String> {
        self.lock()
            .users
            .get(localpart)
            .map(|user| user.devices.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds or replaces a user directly (not recorded as a call).
    pub fn insert_user(&self, localpart: impl Into<String>, user: MockUser) {
        self.lock().users.insert(localpart.into(), user);
    }

    /// Makes `is_localpart_available` answer `false` for `localpart`.
    pub fn reserve_localpart(&self, localpart: impl Into<String>) {
        self.lock().reserved.insert(localpart.into());
    }

    /// Every following call fails this way (`None`: calls work again).
    pub fn set_failure(&self, failure: Option<MockFailure>) {
        self.lock().failure = failure;
    }

    /// Records the call, then fails if told to.
    fn begin(
        &self,
        call: &'static str,
        record: MockCall,
    ) -> Result<MutexGuard<'_, State>, HomeserverError> {
        let mut state = self.lock();
        state.calls.push(record);
        match state.failure {
            None => Ok(state),
            Some(MockFailure::Unreachable) => Err(HomeserverError::Unreachable {
                call,
                source: "mock homeserver told to be unreachable".into(),
            }),
            Some(MockFailure::Timeout) => Err(HomeserverError::Timeout {
                call,
                timeout: super::CALL_TIMEOUT,
            }),
            Some(MockFailure::ServerError) => Err(HomeserverError::Status {
                call,
                status: 500,
                errcode: None,
                message: None,
            }),
        }
    }
}

fn not_found(call: &'static str, what: &str) -> HomeserverError {
    HomeserverError::Status {
        call,
        status: 404,
        errcode: Some("M_NOT_FOUND".to_owned()),
        message: Some(what.to_owned()),
    }
}

/// The user, or Synapse's `404 M_NOT_FOUND`.
fn user_mut<'a>(
    state: &'a mut State,
    call: &'static str,
    localpart: &str,
) -> Result<&'a mut MockUser, HomeserverError> {
    state
        .users
        .get_mut(localpart)
        .ok_or_else(|| not_found(call, "User not found"))
}

/// Synapse's username rules (`check_username`): lower-case `a-z0-9._=-/+`, not empty, not
/// starting with `_`, not all digits.
fn is_valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && !localpart.starts_with('_')
        && !localpart.bytes().all(|b| b.is_ascii_digit())
        && localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        )
}

fn apply<T>(field: &mut Option<T>, action: &FieldAction<T>)
where
    T: Clone,
{
    match action {
        FieldAction::Keep => {}
        FieldAction::Set(value) => *field = Some(value.clone()),
        FieldAction::Unset => *field = None,
    }
}

#[async_trait]
impl HomeserverConnection for MockHomeserver {
    fn homeserver(&self) -> &str {
        &self.homeserver
    }

    async fn query_user(
        &self,
        localpart: &str,
        _timeout: Duration,
    ) -> Result<Option<HomeserverUser>, HomeserverError> {
        let state = self.begin("query_user", MockCall::QueryUser(localpart.to_owned()))?;
        Ok(state.users.get(localpart).map(|user| HomeserverUser {
            user_id: self.mxid(localpart),
            display_name: user.display_name.clone(),
            avatar_url: user.avatar_url.clone(),
            is_suspended: false,
            is_deactivated: user.deactivated,
        }))
    }

    async fn is_localpart_available(&self, localpart: &str) -> Result<bool, HomeserverError> {
        if !is_ascii_localpart(localpart) {
            return Ok(false);
        }
        let record = MockCall::IsLocalpartAvailable(localpart.to_owned());
        let state = self.begin("is_localpart_available", record)?;
        Ok(is_valid_localpart(localpart)
            && !state.users.contains_key(localpart)
            && !state.reserved.contains(localpart))
    }

    async fn provision_user(
        &self,
        request: &ProvisionRequest,
    ) -> Result<Upserted, HomeserverError> {
        let mut state = self.begin("provision_user", MockCall::ProvisionUser(request.clone()))?;
        let created = !state.users.contains_key(&request.localpart);
        let user = state.users.entry(request.localpart.clone()).or_default();
        if created {
            user.display_name = Some(request.localpart.clone());
        }
        apply(&mut user.display_name, &request.display_name);
        apply(&mut user.avatar_url, &request.avatar_url);
        match &request.emails {
            FieldAction::Keep => {}
            FieldAction::Set(emails) => user.emails = emails.iter().cloned().collect(),
            FieldAction::Unset => user.emails.clear(),
        }
        if let Some(locked) = request.locked {
            user.locked = locked;
        }
        Ok(if created {
            Upserted::Created
        } else {
            Upserted::Updated
        })
    }

    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<Upserted, HomeserverError> {
        let record = MockCall::UpsertDevice(
            localpart.to_owned(),
            device_id.to_owned(),
            display_name.map(str::to_owned),
        );
        let mut state = self.begin("upsert_device", record)?;
        let user = user_mut(&mut state, "upsert_device", localpart)?;
        let created = !user.devices.contains_key(device_id);
        let name = user.devices.entry(device_id.to_owned()).or_default();
        if let Some(display_name) = display_name {
            *name = Some(display_name.to_owned());
        }
        Ok(if created {
            Upserted::Created
        } else {
            Upserted::Updated
        })
    }

    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError> {
        const CALL: &str = "update_device_display_name";
        let record = MockCall::UpdateDeviceDisplayName(
            localpart.to_owned(),
            device_id.to_owned(),
            display_name.to_owned(),
        );
        let mut state = self.begin(CALL, record)?;
        let user = user_mut(&mut state, CALL, localpart)?;
        let name = user
            .devices
            .get_mut(device_id)
            .ok_or_else(|| not_found(CALL, "Not found"))?;
        *name = Some(display_name.to_owned());
        Ok(())
    }

    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError> {
        let record = MockCall::DeleteDevice(localpart.to_owned(), device_id.to_owned());
        let mut state = self.begin("delete_device", record)?;
        user_mut(&mut state, "delete_device", localpart)?
            .devices
            .remove(device_id);
        Ok(())
    }

    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        let record = MockCall::SyncDevices(localpart.to_owned(), devices.clone());
        let mut state = self.begin("sync_devices", record)?;
        let user = user_mut(&mut state, "sync_devices", localpart)?;
        user.devices.retain(|id, _| devices.contains(id));
        for id in devices {
            user.devices.entry(id.clone()).or_default();
        }
        Ok(())
    }

    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError> {
        let record = MockCall::DeleteUser(localpart.to_owned(), erase);
        let mut state = self.begin("delete_user", record)?;
        let user = user_mut(&mut state, "delete_user", localpart)?;
        user.deactivated = true;
        user.erased |= erase;
        user.devices.clear();
        Ok(())
    }

    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError> {
        let record = MockCall::ReactivateUser(localpart.to_owned());
        let mut state = self.begin("reactivate_user", record)?;
        user_mut(&mut state, "reactivate_user", localpart)?.deactivated = false;
        Ok(())
    }

    async fn set_displayname(
        &self,
        localpart: &str,
        displayname: &str,
    ) -> Result<(), HomeserverError> {
        let record = MockCall::SetDisplayname(localpart.to_owned(), displayname.to_owned());
        let mut state = self.begin("set_displayname", record)?;
        user_mut(&mut state, "set_displayname", localpart)?.display_name =
            Some(displayname.to_owned());
        Ok(())
    }

    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError> {
        let record = MockCall::UnsetDisplayname(localpart.to_owned());
        let mut state = self.begin("unset_displayname", record)?;
        user_mut(&mut state, "unset_displayname", localpart)?.display_name = None;
        Ok(())
    }

    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError> {
        const CALL: &str = "allow_cross_signing_reset";
        let record = MockCall::AllowCrossSigningReset(localpart.to_owned());
        let mut state = self.begin(CALL, record)?;
        user_mut(&mut state, CALL, localpart)?.cross_signing_reset_allowed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
