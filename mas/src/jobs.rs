//! Background jobs (docs/architecture.md#background-jobs): the typed payloads of the durable queue
//! (`storage::jobs`), [`queue`] to add one inside the caller's transaction, [`JobWaker`], the
//! in-process nudge that tells the worker a job was committed, and the worker itself ([`worker`])
//! with the handlers of each queue.
//!
//! Usage: queue a job in the same transaction as the change that needs it; after the commit,
//! call [`JobWaker::wake`] (`state.jobs.wake()`).

mod handlers;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::{Notify, OwnedMutexGuard};
use ulid::Ulid;

pub use self::handlers::device_set;
pub use self::worker::{Outcome, RunReport, run_job_now};
use crate::app::AppState;
use crate::clock::Clock;
use crate::email::Mailer;
use crate::homeserver::HomeserverConnection;
use crate::rng::RngSource;
use crate::routes::UrlBuilder;
use crate::storage::jobs::enqueue_job;
use crate::storage::{Database, StorageError};
use crate::templates::Templates;

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
    /// Reactivate a user in the homeserver (`reactivate_user`).
    pub const REACTIVATE_USER: &str = "reactivate-user";
    /// Mail the code of an email authentication.
    pub const SEND_EMAIL_AUTHENTICATION_CODE: &str = "send-email-authentication-code";
    /// Mail the links of a password recovery request.
    pub const SEND_RECOVERY_EMAILS: &str = "send-recovery-emails";
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
    /// [`Job::ProvisionUser`] that also sets the profile display name (MAS does not store
    /// display names; `manage register-user --display-name`). Same queue, `set_display_name`
    /// in the payload.
    ProvisionUserWithDisplayName {
        /// The MAS user id.
        user_id: Ulid,
        /// The display name to set.
        display_name: String,
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
    /// Undo a deactivation in the homeserver (`reactivate_user`).
    ReactivateUser {
        /// The MAS user id.
        user_id: Ulid,
    },
    /// Mail the code of an email authentication to its address (nothing once it is completed or
    /// expired).
    SendEmailAuthenticationCode {
        /// The `user_email_authentications` row.
        authentication_id: Ulid,
    },
    /// Mail a recovery link to every account that has the address of a password recovery
    /// request verified (`POST /recover`).
    SendRecoveryEmails {
        /// The `user_recovery_sessions` row.
        session_id: Ulid,
    },
}

/// The JSON shape of the user-only payloads.
#[derive(Serialize, Deserialize)]
struct UserPayload {
    user_id: String,
}

/// `provision-user`: upstream's key for the display name is `set_display_name`.
#[derive(Serialize, Deserialize)]
struct ProvisionPayload {
    user_id: String,
    #[serde(default)]
    set_display_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DeleteDevicePayload {
    user_id: String,
    device_id: String,
}

#[derive(Serialize, Deserialize)]
struct EmailAuthenticationPayload {
    user_email_authentication_id: String,
}

#[derive(Serialize, Deserialize)]
struct RecoveryPayload {
    user_recovery_session_id: String,
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
            Self::ProvisionUser { .. } | Self::ProvisionUserWithDisplayName { .. } => {
                queues::PROVISION_USER
            }
            Self::SyncDevices { .. } => queues::SYNC_DEVICES,
            Self::DeleteDevice { .. } => queues::DELETE_DEVICE,
            Self::DeactivateUser { .. } => queues::DEACTIVATE_USER,
            Self::ReactivateUser { .. } => queues::REACTIVATE_USER,
            Self::SendEmailAuthenticationCode { .. } => queues::SEND_EMAIL_AUTHENTICATION_CODE,
            Self::SendRecoveryEmails { .. } => queues::SEND_RECOVERY_EMAILS,
        }
    }

    /// The user the job is about, when it is about one.
    pub fn user_id(&self) -> Option<Ulid> {
        match self {
            Self::ProvisionUser { user_id }
            | Self::ProvisionUserWithDisplayName { user_id, .. }
            | Self::SyncDevices { user_id }
            | Self::DeleteDevice { user_id, .. }
            | Self::DeactivateUser { user_id, .. }
            | Self::ReactivateUser { user_id } => Some(*user_id),
            Self::SendEmailAuthenticationCode { .. } | Self::SendRecoveryEmails { .. } => None,
        }
    }

    /// The stored payload.
    pub fn payload(&self) -> serde_json::Value {
        match self {
            Self::ProvisionUser { user_id }
            | Self::SyncDevices { user_id }
            | Self::ReactivateUser { user_id } => {
                serde_json::json!({ "user_id": user_id.to_string() })
            }
            Self::ProvisionUserWithDisplayName {
                user_id,
                display_name,
            } => serde_json::json!({
                "user_id": user_id.to_string(),
                "set_display_name": display_name,
            }),
            Self::DeleteDevice { user_id, device_id } => {
                serde_json::json!({ "user_id": user_id.to_string(), "device_id": device_id })
            }
            Self::DeactivateUser { user_id, hs_erase } => {
                serde_json::json!({ "user_id": user_id.to_string(), "hs_erase": hs_erase })
            }
            Self::SendEmailAuthenticationCode { authentication_id } => serde_json::json!({
                "user_email_authentication_id": authentication_id.to_string(),
            }),
            Self::SendRecoveryEmails { session_id } => serde_json::json!({
                "user_recovery_session_id": session_id.to_string(),
            }),
        }
    }

    /// Reads a stored job back: the queue name and its payload.
    pub fn from_stored(
        queue_name: &str,
        payload: &serde_json::Value,
    ) -> Result<Self, PayloadError> {
        match queue_name {
            queues::PROVISION_USER => {
                let p: ProvisionPayload = decode(queues::PROVISION_USER, payload)?;
                let user_id = parse_ulid(queues::PROVISION_USER, &p.user_id)?;
                Ok(match p.set_display_name {
                    None => Self::ProvisionUser { user_id },
                    Some(display_name) => Self::ProvisionUserWithDisplayName {
                        user_id,
                        display_name,
                    },
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
            queues::REACTIVATE_USER => {
                let p: UserPayload = decode(queues::REACTIVATE_USER, payload)?;
                Ok(Self::ReactivateUser {
                    user_id: parse_ulid(queues::REACTIVATE_USER, &p.user_id)?,
                })
            }
            queues::SEND_EMAIL_AUTHENTICATION_CODE => {
                let queue = queues::SEND_EMAIL_AUTHENTICATION_CODE;
                let p: EmailAuthenticationPayload = decode(queue, payload)?;
                Ok(Self::SendEmailAuthenticationCode {
                    authentication_id: Ulid::from_string(&p.user_email_authentication_id).map_err(
                        |e| PayloadError::Invalid {
                            queue,
                            reason: format!("user_email_authentication_id: {e}"),
                        },
                    )?,
                })
            }
            queues::SEND_RECOVERY_EMAILS => {
                let p: RecoveryPayload = decode(queues::SEND_RECOVERY_EMAILS, payload)?;
                Ok(Self::SendRecoveryEmails {
                    session_id: parse_ulid(
                        queues::SEND_RECOVERY_EMAILS,
                        &p.user_recovery_session_id,
                    )?,
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

/// The process's handle on its job system: wakes the in-process worker after a commit that
/// queued a job, and holds the per-user locks of device syncs. Cheap to clone (clones share
/// the state); waking with no worker running is harmless: the worker polls the queue when it
/// starts and every [`worker::IDLE_POLL`].
#[derive(Debug, Clone, Default)]
pub struct JobWaker {
    inner: Arc<WakerInner>,
}

#[derive(Debug, Default)]
struct WakerInner {
    notify: Notify,
    /// One async mutex per user with a device sync in progress (dropped when unused).
    user_locks: Mutex<HashMap<Ulid, Arc<tokio::sync::Mutex<()>>>>,
}

impl JobWaker {
    /// A new handle (share it by cloning).
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the worker to look at the queue now. A wake-up while the worker is busy is kept
    /// and seen the next time it would sleep.
    pub fn wake(&self) {
        self.inner.notify.notify_one();
    }

    /// Waits for a [`wake`](Self::wake) (the worker's side).
    pub async fn woken(&self) {
        self.inner.notify.notified().await;
    }

    /// Holds the user's device lock until the guard is dropped: what reads a user's sessions
    /// to change the homeserver's devices takes it, so two such changes cannot interleave.
    pub async fn lock_user(&self, user_id: Ulid) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = (self.inner.user_locks)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Forget the locks nobody holds or waits for (only the map's reference is left).
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(user_id).or_default())
        };
        lock.lock_owned().await
    }
}

/// What running jobs needs: the parts of [`AppState`] the handlers use. The server builds it
/// from its state; the `manage` CLI from its configuration.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The database.
    pub db: Database,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// The injected randomness.
    pub rng: RngSource,
    /// The homeserver the jobs call.
    pub homeserver: Arc<dyn HomeserverConnection>,
    /// Wake-ups and per-user locks, shared with the rest of the process.
    pub jobs: JobWaker,
    /// What the mail jobs need; `None` where no mail is sent (the `manage` CLI leaves mail
    /// jobs to the server, which retries them).
    pub mail: Option<Arc<MailContext>>,
}

/// What the mail jobs need: the mailer, the templates and the public URLs.
#[derive(Debug)]
pub struct MailContext {
    /// Outgoing mail.
    pub mailer: Arc<Mailer>,
    /// The mail templates.
    pub templates: Templates,
    /// The public URLs (links in mail).
    pub urls: UrlBuilder,
    /// The Matrix server name (subjects).
    pub server_name: String,
}

impl From<&AppState> for JobContext {
    fn from(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: Arc::clone(&state.clock),
            rng: state.rng.clone(),
            homeserver: Arc::clone(&state.homeserver),
            jobs: state.jobs.clone(),
            mail: Some(Arc::new(MailContext {
                mailer: Arc::clone(&state.mailer),
                templates: state.templates.clone(),
                urls: state.urls.clone(),
                server_name: state.site.server_name.clone(),
            })),
        }
    }
}

#[cfg(test)]
mod mail_tests;
#[cfg(test)]
mod tests;
