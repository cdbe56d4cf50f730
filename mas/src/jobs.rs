//! Background jobs (mas-protocol §13.2): the typed payloads of the durable queue
//! (`storage::jobs`), [`queue`] to add one inside the caller's transaction, and [`JobWaker`],
//! the in-process nudge that tells the worker a job was committed. Queue a job in the same
//! transaction as the change that needs it; after the commit, call [`JobWaker::wake`].

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::Notify;
use ulid::Ulid;

use crate::clock::Clock;
use crate::storage::StorageError;
use crate::storage::jobs::enqueue_job;

/// The queue names, as upstream MAS spells them.
pub mod queues {
    /// Create or update a user in the homeserver.
    pub const PROVISION_USER: &str = "provision-user";
    /// Make the homeserver's device list match the user's active sessions.
    pub const SYNC_DEVICES: &str = "sync-devices";
    /// Delete one device in the homeserver.
    pub const DELETE_DEVICE: &str = "delete-device";
    /// Deactivate a user in the homeserver (`delete_user`).
    pub const DEACTIVATE_USER: &str = "deactivate-user";
}

/// A job with its arguments. The queue name picks the variant; the payload is the JSON of the
/// fields (upstream key names: `user_id`, `device_id`, `hs_erase`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Create or update the user in the homeserver (`provision_user`), then sync its devices.
    ProvisionUser {
        /// The MAS user id.
        user_id: Ulid,
    },
    /// Make the homeserver's devices match the user's active sessions.
    SyncDevices {
        /// The MAS user id.
        user_id: Ulid,
    },
    /// Delete one device of the user in the homeserver.
    DeleteDevice {
        /// The MAS user id.
        user_id: Ulid,
        /// The Matrix device id.
        device_id: String,
    },
    /// Deactivate the user in the homeserver (`delete_user`), optionally erasing its data.
    DeactivateUser {
        /// The MAS user id.
        user_id: Ulid,
        /// Ask Synapse to erase the user's messages too (GDPR erasure).
        hs_erase: bool,
    },
}

/// The JSON shape of the user-only payloads.
#[derive(Serialize, Deserialize)]
struct UserPayload {
    user_id: String,
}

#[derive(Serialize, Deserialize)]
struct DeleteDevicePayload {
    user_id: String,
    device_id: String,
}

#[derive(Serialize, Deserialize)]
struct DeactivateUserPayload {
    user_id: String,
    #[serde(default)]
    hs_erase: bool,
}

/// Why a stored job cannot be turned back into a [`Job`].
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// No handler for this queue.
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// The payload does not have the queue's shape.
    #[error("invalid payload for {queue}: {reason}")]
    Invalid {
        /// The queue name.
        queue: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Job {
    /// The queue this job goes to.
    pub fn queue_name(&self) -> &'static str {
        match self {
            Self::ProvisionUser { .. } => queues::PROVISION_USER,
            Self::SyncDevices { .. } => queues::SYNC_DEVICES,
            Self::DeleteDevice { .. } => queues::DELETE_DEVICE,
            Self::DeactivateUser { .. } => queues::DEACTIVATE_USER,
        }
    }

    /// The user the job is about.
    pub fn user_id(&self) -> Ulid {
        match self {
            Self::ProvisionUser { user_id }
            | Self::SyncDevices { user_id }
            | Self::DeleteDevice { user_id, .. }
            | Self::DeactivateUser { user_id, .. } => *user_id,
        }
    }

    /// The stored payload.
    pub fn payload(&self) -> serde_json::Value {
        match self {
            Self::ProvisionUser { user_id } | Self::SyncDevices { user_id } => {
                serde_json::json!({ "user_id": user_id.to_string() })
            }
            Self::DeleteDevice { user_id, device_id } => {
                serde_json::json!({ "user_id": user_id.to_string(), "device_id": device_id })
            }
            Self::DeactivateUser { user_id, hs_erase } => {
                serde_json::json!({ "user_id": user_id.to_string(), "hs_erase": hs_erase })
            }
        }
    }

    /// Reads a stored job back: the queue name and its payload.
    pub fn from_stored(
        queue_name: &str,
        payload: &serde_json::Value,
    ) -> Result<Self, PayloadError> {
        match queue_name {
            queues::PROVISION_USER => {
                let p: UserPayload = decode(queues::PROVISION_USER, payload)?;
                Ok(Self::ProvisionUser {
                    user_id: parse_ulid(queues::PROVISION_USER, &p.user_id)?,
                })
            }
            queues::SYNC_DEVICES => {
                let p: UserPayload = decode(queues::SYNC_DEVICES, payload)?;
                Ok(Self::SyncDevices {
                    user_id: parse_ulid(queues::SYNC_DEVICES, &p.user_id)?,
                })
            }
            queues::DELETE_DEVICE => {
                let p: DeleteDevicePayload = decode(queues::DELETE_DEVICE, payload)?;
                Ok(Self::DeleteDevice {
                    user_id: parse_ulid(queues::DELETE_DEVICE, &p.user_id)?,
                    device_id: p.device_id,
                })
            }
            queues::DEACTIVATE_USER => {
                let p: DeactivateUserPayload = decode(queues::DEACTIVATE_USER, payload)?;
                Ok(Self::DeactivateUser {
                    user_id: parse_ulid(queues::DEACTIVATE_USER, &p.user_id)?,
                    hs_erase: p.hs_erase,
                })
            }
            other => Err(PayloadError::UnknownQueue(other.to_owned())),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    queue: &'static str,
    payload: &serde_json::Value,
) -> Result<T, PayloadError> {
    T::deserialize(payload).map_err(|e| PayloadError::Invalid {
        queue,
        reason: e.to_string(),
    })
}

fn parse_ulid(queue: &'static str, text: &str) -> Result<Ulid, PayloadError> {
    Ulid::from_string(text).map_err(|e| PayloadError::Invalid {
        queue,
        reason: format!("user_id: {e}"),
    })
}

/// Adds `job` to the durable queue, to run as soon as the worker gets to it. Call it inside
/// the transaction of the change that needs it, then [`JobWaker::wake`] after the commit.
pub async fn queue(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    job: &Job,
) -> Result<(), StorageError> {
    enqueue_job(conn, clock, rng, job.queue_name(), &job.payload()).await?;
    Ok(())
}

/// Wakes the in-process worker after a commit that queued a job (cheap to clone; waking with
/// no worker running is harmless: the worker polls the queue when it starts).
#[derive(Debug, Clone, Default)]
pub struct JobWaker {
    notify: Arc<Notify>,
}

impl JobWaker {
    /// A new handle (share it by cloning).
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the worker to look at the queue now. A wake-up while the worker is busy is kept
    /// and seen the next time it would sleep.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits for a [`wake`](Self::wake) (the worker's side).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_round_trips_through_its_stored_form() {
        let user_id = Ulid::from_parts(1_704_067_200_000, 42);
        let jobs = [
            Job::ProvisionUser { user_id },
            Job::SyncDevices { user_id },
            Job::DeleteDevice {
                user_id,
                device_id: "ABCDEFGHIJ".to_owned(),
            },
            Job::DeactivateUser {
                user_id,
                hs_erase: true,
            },
        ];
        for job in jobs {
            let back = Job::from_stored(job.queue_name(), &job.payload()).unwrap();
            assert_eq!(back, job);
        }
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let unknown = Job::from_stored("nope", &serde_json::json!({}));
        assert!(matches!(unknown, Err(PayloadError::UnknownQueue(_))));
        for payload in [
            serde_json::json!({}),
            serde_json::json!({ "user_id": 7 }),
            serde_json::json!({ "user_id": "not-a-ulid" }),
            serde_json::json!("text"),
        ] {
            let err = Job::from_stored(queues::PROVISION_USER, &payload).unwrap_err();
            assert!(matches!(err, PayloadError::Invalid { .. }), "{payload}");
        }
        let missing_device = serde_json::json!({ "user_id": Ulid::nil().to_string() });
        assert!(Job::from_stored(queues::DELETE_DEVICE, &missing_device).is_err());
    }

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost() {
        let waker = JobWaker::new();
        waker.clone().wake();
        tokio::time::timeout(std::time::Duration::from_secs(5), waker.woken())
            .await
            .unwrap();
    }
}
