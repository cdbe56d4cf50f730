//! Ending sessions, one way for each kind, used by every caller: revocation, a replayed code
//! or refresh token, compat logout, a failed compat login, the account page's "Sign out",
//! the web logout, `manage kill-sessions` and `manage lock-user`.
//!
//! An OAuth 2.0 or compat session holds a Matrix device. Ending one finishes it in the
//! database with a `sync-devices` job queued in the same transaction, then deletes in the
//! homeserver at once each of its devices that no active session of the user still holds, so
//! that Synapse stops honouring the tokens (its introspection cache only forgets a token when
//! the device goes). When that call fails, the queued sync deletes the device later: the
//! deletion is never lost. A browser session holds no device. Ending all of a user's
//! sessions happens inside the caller's transaction, which queues the jobs it wants (a device
//! sync, or the user's deactivation).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::FromRef;

use sqlx::{Any, AnyConnection, Transaction};
use ulid::Ulid;

use crate::app::AppState;
use crate::clock::Clock;
use crate::homeserver::HomeserverConnection;
use crate::jobs::{self, Job, JobWaker};
use crate::model::{CompatSession, User};
use crate::rng::RngSource;
use crate::storage::{Database, StorageError, browser_sessions, compat, oauth2_sessions, users};

/// The handles ending a session with a device needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionEnder<'a> {
    /// The database.
    pub(crate) db: &'a Database,
    /// The injected clock.
    pub(crate) clock: &'a dyn Clock,
    /// The injected randomness (for the job's id).
    pub(crate) rng: &'a RngSource,
    /// The homeserver.
    pub(crate) homeserver: &'a dyn HomeserverConnection,
    /// Wakes the job worker after queueing.
    pub(crate) jobs: &'a JobWaker,
}

/// The state parts ending a session needs, owned: what handlers extract
/// (`State<SessionHandles>`) to build a [`SessionEnder`] with [`SessionHandles::ender`]; the
/// database, clock and randomness serve the handler's own writes too.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandles {
    /// The database pool.
    pub(crate) db: Database,
    /// The injected clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// The injected randomness.
    pub(crate) rng: RngSource,
    /// The homeserver whose devices are deleted.
    pub(crate) homeserver: Arc<dyn HomeserverConnection>,
    /// Wakes the job worker after queueing.
    pub(crate) jobs: JobWaker,
}

impl FromRef<AppState> for SessionHandles {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            rng: state.rng.clone(),
            homeserver: state.homeserver.clone(),
            jobs: state.jobs.clone(),
        }
    }
}

impl SessionHandles {
    /// Ends sessions as every kind of session ends (docs/architecture.md#conventions).
    pub(crate) fn ender(&self) -> SessionEnder<'_> {
        SessionEnder {
            db: &self.db,
            clock: self.clock.as_ref(),
            rng: &self.rng,
            homeserver: self.homeserver.as_ref(),
            jobs: &self.jobs,
        }
    }
}

impl SessionEnder<'_> {
    /// Ends the OAuth 2.0 session `id` and releases its devices. Returns `false` when it was
    /// already finished or does not exist (nothing is done then).
    #[tracing::instrument(name = "auth.sessions.end_oauth2", skip_all, fields(oauth2_session.id = %id), err)]
    pub(crate) async fn end_oauth2_session(&self, id: Ulid) -> Result<bool, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let Some(session) = oauth2_sessions::find_oauth2_session(&mut tx, id).await? else {
            return Ok(false);
        };
        if !oauth2_sessions::finish_oauth2_session(&mut tx, self.clock, id).await? {
            return Ok(false);
        }
        let devices = session.scope.device_ids();
        match session.user_id {
            Some(user_id) if !devices.is_empty() => {
                self.release_devices(tx, user_id, &devices).await?;
            }
            _ => tx.commit().await?,
        }
        Ok(true)
    }

    /// Ends the compat `sessions` of `user` and releases their devices.
    #[tracing::instrument(name = "auth.sessions.end_compat", skip_all, fields(user.id = %user.id), err)]
    pub(crate) async fn end_compat_sessions(
        &self,
        user: &User,
        sessions: &[CompatSession],
    ) -> Result<(), StorageError> {
        let mut tx = self.db.begin_write().await?;
        for session in sessions {
            compat::finish_compat_session(&mut tx, self.clock, session.id).await?;
        }
        let devices: Vec<&str> = sessions.iter().map(|s| s.device_id.as_str()).collect();
        self.release_devices(tx, user.id, &devices).await
    }

    /// The end of both kinds, once their sessions are finished in `tx`: queues a device sync,
    /// commits, then deletes each of `devices` that no active session of the user holds.
    async fn release_devices(
        &self,
        mut tx: Transaction<'static, Any>,
        user_id: Ulid,
        devices: &[&str],
    ) -> Result<(), StorageError> {
        let mut rng = self.rng.fork();
        jobs::queue(&mut tx, self.clock, &mut rng, &Job::SyncDevices { user_id }).await?;
        let user = users::find_user(&mut tx, user_id).await?;
        let held = jobs::device_set(&mut tx, user_id).await?;
        tx.commit().await?;
        if let Some(user) = user {
            let released: BTreeSet<&str> = devices
                .iter()
                .copied()
                .filter(|device| !held.contains(*device))
                .collect();
            for device_id in released {
                self.delete_device(&user, device_id).await;
            }
        }
        self.jobs.wake();
        Ok(())
    }

    /// Deletes the device in the homeserver; a failure is logged and left to the queued sync.
    async fn delete_device(&self, user: &User, device_id: &str) {
        if let Err(error) = self
            .homeserver
            .delete_device(&user.username, device_id)
            .await
        {
            tracing::warn!(
                user.id = %user.id,
                device.id = %device_id,
                error = &error as &dyn std::error::Error,
                "deleting the device failed; the queued device sync will retry"
            );
        }
    }
}

/// Ends the browser session `id` (the web logout). Its OAuth and compat sessions live on:
/// logging out of the web pages does not sign the user's apps out. `false` when it was
/// already finished or does not exist.
#[tracing::instrument(name = "auth.sessions.end_browser", skip_all, fields(user_session.id = %id), err)]
pub(crate) async fn end_browser_session(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
) -> Result<bool, StorageError> {
    let finished = browser_sessions::finish_browser_session(conn, clock, id).await?;
    if finished {
        tracing::info!(user_session.id = %id, "browser session ended");
    }
    Ok(finished)
}

/// Finishes the user's active compat sessions on `device_id` before a new one takes the device
/// (a login or an issued token naming a device that is in use). The device itself stays: the
/// new session holds it.
#[tracing::instrument(name = "auth.sessions.replace_compat_on_device", skip_all, fields(user.id = %user_id), err)]
pub(crate) async fn replace_compat_sessions_on_device(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
    device_id: &str,
) -> Result<(), StorageError> {
    for old in compat::find_active_compat_sessions_by_device(conn, user_id, device_id).await? {
        compat::finish_compat_session(conn, clock, old.id).await?;
        tracing::info!(compat_session.id = %old.id, "compat session replaced by a new one on its device");
    }
    Ok(())
}

/// How many sessions of each kind [`end_all_sessions`] ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EndedSessions {
    /// OAuth 2.0 sessions.
    pub(crate) oauth2: u64,
    /// Compat sessions.
    pub(crate) compat: u64,
    /// Browser sessions.
    pub(crate) browser: u64,
}

impl EndedSessions {
    /// All of them.
    pub(crate) fn total(&self) -> u64 {
        self.oauth2 + self.compat + self.browser
    }
}

/// Ends every active session of `user_id` (OAuth 2.0, compat and browser) in the caller's
/// transaction. The caller queues what deletes the devices in the homeserver (a
/// `sync-devices` job, or `deactivate-user`) in the same transaction.
#[tracing::instrument(name = "auth.sessions.end_all", skip_all, fields(user.id = %user_id), err)]
pub(crate) async fn end_all_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
) -> Result<EndedSessions, StorageError> {
    Ok(EndedSessions {
        oauth2: oauth2_sessions::finish_all_oauth2_sessions(conn, clock, user_id).await?,
        compat: compat::finish_all_compat_sessions(conn, clock, user_id).await?,
        browser: browser_sessions::finish_all_browser_sessions(conn, clock, user_id).await?,
    })
}

/// [`end_all_sessions`] but the browser session `keep` (the one a password change is made in,
/// when the user signs out their other sessions). The caller queues the device sync.
#[tracing::instrument(name = "auth.sessions.end_others", skip_all, fields(user.id = %user_id), err)]
pub(crate) async fn end_other_sessions(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    user_id: Ulid,
    keep: Ulid,
) -> Result<EndedSessions, StorageError> {
    Ok(EndedSessions {
        oauth2: oauth2_sessions::finish_all_oauth2_sessions(conn, clock, user_id).await?,
        compat: compat::finish_all_compat_sessions(conn, clock, user_id).await?,
        browser: browser_sessions::finish_other_browser_sessions(conn, clock, user_id, keep)
            .await?,
    })
}

#[cfg(test)]
mod tests;
