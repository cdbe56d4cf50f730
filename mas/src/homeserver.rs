//! The homeserver behind MAS (docs/protocol.md#calls-to-synapse): [`HomeserverConnection`], the
//! calls MAS makes on Synapse's `/_synapse/mas/*` API, with the Synapse client
//! ([`SynapseConnection`]) and an in-memory stand-in for tests ([`MockHomeserver`]). Users are
//! addressed by localpart.
//!
//! Status handling follows Synapse's `/_synapse/mas` API exactly
//! (docs/protocol.md#calls-to-synapse): the success status of each call is known (201 vs 200 for
//! upserts, 204 for `delete_device`), an unknown user is `404 M_NOT_FOUND`, and anything else is a
//! [`HomeserverError`] that says whether a retry may help.

mod error;
mod mock;
mod synapse;

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::error::HomeserverError;
pub use self::mock::{MockCall, MockFailure, MockHomeserver, MockUser};
pub use self::synapse::{SynapseConnection, SynapseSetupError};

/// Time limit of one call unless the caller passes its own.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Time limit of the `query_user` call on the consent page (docs/protocol.md#consent).
pub const CONSENT_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// How MAS talks to its homeserver. Object-safe: `AppState` holds an
/// `Arc<dyn HomeserverConnection>`.
#[async_trait]
pub trait HomeserverConnection: Send + Sync + std::fmt::Debug {
    /// The homeserver's server name (the part after `:` in user IDs).
    fn homeserver(&self) -> &str;

    /// The Matrix user ID of `localpart` on this homeserver (`@alice:example.com`).
    fn mxid(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.homeserver())
    }

    /// The user's profile and status; `None` if the homeserver does not know the user.
    /// `timeout` bounds the whole call ([`CALL_TIMEOUT`], or [`CONSENT_QUERY_TIMEOUT`] on a
    /// page that must not hang).
    async fn query_user(
        &self,
        localpart: &str,
        timeout: Duration,
    ) -> Result<Option<HomeserverUser>, HomeserverError>;

    /// Whether a new user may take `localpart`: `false` when taken, invalid, inside an
    /// application service's exclusive namespace, or not ASCII (not even asked then).
    async fn is_localpart_available(&self, localpart: &str) -> Result<bool, HomeserverError>;

    /// Creates the user, or updates the fields the request sets or unsets.
    async fn provision_user(&self, request: &ProvisionRequest)
    -> Result<Upserted, HomeserverError>;

    /// Creates the device (tokens bound to it start working) or renames it. A `None` display
    /// name leaves an existing name alone.
    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<Upserted, HomeserverError>;

    /// Renames an existing device.
    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError>;

    /// Deletes the device and its tokens; Synapse stops honouring them at once.
    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError>;

    /// Makes the user's device set equal to `devices`: creates the missing, deletes the rest.
    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError>;

    /// Deactivates the user (devices, tokens and room memberships go); `erase` also marks the
    /// user's data erased.
    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError>;

    /// Undoes a deactivation.
    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError>;

    /// Sets the profile display name.
    async fn set_displayname(
        &self,
        localpart: &str,
        displayname: &str,
    ) -> Result<(), HomeserverError>;

    /// Clears the profile display name.
    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError>;

    /// Lets the user replace their master cross-signing key without interactive auth for the
    /// next 10 minutes.
    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError>;
}

/// What `query_user` tells about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeserverUser {
    /// The full Matrix ID.
    pub user_id: String,
    /// The profile display name, if any.
    pub display_name: Option<String>,
    /// The profile avatar (`mxc://` URL), if any.
    pub avatar_url: Option<String>,
    /// Suspended by a server admin.
    pub is_suspended: bool,
    /// Deactivated.
    pub is_deactivated: bool,
}

/// Whether an upsert created its object (201) or found it existing (200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// It did not exist and was created.
    Created,
    /// It existed and was updated (or left as it was).
    Updated,
}

/// What to do with one profile field in a [`ProvisionRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FieldAction<T> {
    /// Leave it as it is (on creation: Synapse's default).
    #[default]
    Keep,
    /// Set it to this value.
    Set(T),
    /// Clear it.
    Unset,
}

/// The `provision_user` request: create the user if missing, then apply the field actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// The user's localpart.
    pub localpart: String,
    /// The profile display name; on creation Synapse uses the localpart unless one is set.
    pub display_name: FieldAction<String>,
    /// The profile avatar URL.
    pub avatar_url: FieldAction<String>,
    /// The user's email addresses, stored by Synapse as validated 3PIDs; `Set` replaces the
    /// whole list.
    pub emails: FieldAction<Vec<String>>,
    /// Locks (`Some(true)`) or unlocks the account in Synapse; `None` leaves it.
    pub locked: Option<bool>,
}

impl ProvisionRequest {
    /// A request that only makes sure the user exists.
    pub fn new(localpart: impl Into<String>) -> Self {
        Self {
            localpart: localpart.into(),
            ..Self::default()
        }
    }
}

/// Synapse's rule for localparts MAS may offer, checked before asking (upstream MAS does the
/// same): anything but ASCII is refused without a request.
fn is_ascii_localpart(localpart: &str) -> bool {
    localpart.is_ascii()
}
