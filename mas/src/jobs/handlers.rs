//! What each queue does (docs/protocol.md#calls-to-synapse). A handler makes the homeserver calls
//! for one job and returns the jobs to queue after it (queued together with its completion); it
//! never panics and says whether a failure is worth retrying.

use std::collections::BTreeSet;

use sqlx::AnyConnection;
use ulid::Ulid;

use super::{Job, JobContext, MailContext};
use crate::auth::account::check_account;
use crate::crypto::{random, sha256_hex};
use crate::email::{MailError, Outgoing};
use crate::homeserver::{FieldAction, HomeserverError, ProvisionRequest};
use crate::model::User;
use crate::model::{
    EMAIL_CODE_LIFETIME_MS, EmailAuthenticationPurpose, RECOVERY_TICKET_LIFETIME_MS,
};
use crate::routes;
use crate::storage::{
    StorageError, browser_sessions, email_authentications, emails, oauth2_sessions, recovery, users,
};
use crate::telemetry::ErrorChain;
use crate::templates::{RecoveryMail, RenderedMail, VerificationMail};

/// Why a job did not succeed, and how to treat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobError {
    /// May succeed later (homeserver down or overloaded, database error): retried with
    /// backoff for as long as it takes.
    Transient(String),
    /// Unexpected answer (a 4xx other than the expected ones): retried a few times, in case
    /// an operator fixes the cause (a wrong secret), then given up.
    Failed(String),
    /// Can never succeed (bad payload, the user no longer exists): not retried.
    Permanent(String),
}

impl JobError {
    /// The reason stored with the failed attempt.
    pub(super) fn reason(&self) -> &str {
        match self {
            Self::Transient(reason) | Self::Failed(reason) | Self::Permanent(reason) => reason,
        }
    }
}

impl From<HomeserverError> for JobError {
    fn from(error: HomeserverError) -> Self {
        let reason = ErrorChain(&error).to_string();
        if error.is_transient() {
            Self::Transient(reason)
        } else {
            Self::Failed(reason)
        }
    }
}

impl From<StorageError> for JobError {
    fn from(error: StorageError) -> Self {
        Self::Transient(ErrorChain(&error).to_string())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        StorageError::from(error).into()
    }
}

/// Runs `job`; on success, the jobs to queue next.
pub(super) async fn run(ctx: &JobContext, job: &Job) -> Result<Vec<Job>, JobError> {
    match job {
        Job::ProvisionUser { user_id } => provision_user(ctx, *user_id, None).await,
        Job::ProvisionUserWithDisplayName {
            user_id,
            display_name,
        } => provision_user(ctx, *user_id, Some(display_name)).await,
        Job::SyncDevices { user_id } => sync_devices(ctx, *user_id).await,
        Job::DeleteDevice { user_id, device_id } => delete_device(ctx, *user_id, device_id).await,
        Job::DeactivateUser { user_id, hs_erase } => {
            deactivate_user(ctx, *user_id, *hs_erase).await
        }
        Job::ReactivateUser { user_id } => reactivate_user(ctx, *user_id).await,
        Job::SendEmailAuthenticationCode { authentication_id } => {
            send_email_authentication_code(ctx, *authentication_id).await
        }
        Job::SendRecoveryEmails { session_id } => send_recovery_emails(ctx, *session_id).await,
    }
}

/// The user, or a permanent failure: a job about a user that is gone cannot succeed.
async fn user(conn: &mut AnyConnection, user_id: Ulid) -> Result<User, JobError> {
    users::find_user(conn, user_id)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("no user with id {user_id}")))
}

/// `provision-user`: the user with its verified emails, locked flag and (when given) display
/// name; then a device sync.
async fn provision_user(
    ctx: &JobContext,
    user_id: Ulid,
    display_name: Option<&str>,
) -> Result<Vec<Job>, JobError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let user = user(&mut conn, user_id).await?;
    let verified: Vec<String> = emails::list_emails(&mut conn, user_id)
        .await?
        .into_iter()
        .filter(|email| email.confirmed_at.is_some())
        .map(|email| email.email)
        .collect();
    drop(conn);
    let request = ProvisionRequest {
        display_name: display_name.map_or(FieldAction::Keep, |name| FieldAction::Set(name.into())),
        emails: FieldAction::Set(verified),
        locked: Some(user.locked_at.is_some()),
        ..ProvisionRequest::new(user.username)
    };
    ctx.homeserver.provision_user(&request).await?;
    Ok(vec![Job::SyncDevices { user_id }])
}

/// The devices the homeserver should have for the user: one per active session that has a
/// device: OAuth 2.0 sessions (their device scopes) and compat sessions (`device_id`).
///
/// Extension point: when personal sessions arrive, add their active sessions' devices here;
/// nothing else in the sync changes.
pub async fn device_set(
    conn: &mut AnyConnection,
    user_id: Ulid,
) -> Result<BTreeSet<String>, StorageError> {
    let sessions = oauth2_sessions::list_active_oauth2_sessions(conn, user_id).await?;
    let mut devices: BTreeSet<String> = sessions
        .iter()
        .flat_map(|session| session.scope.device_ids())
        .map(str::to_owned)
        .collect();
    let compat = crate::storage::compat::list_active_compat_sessions(conn, user_id).await?;
    devices.extend(compat.into_iter().map(|session| session.device_id));
    Ok(devices)
}

/// `sync-devices`: under the user's lock (so two syncs cannot interleave reading the sessions
/// and writing the homeserver), reads the device set and sends it.
async fn sync_devices(ctx: &JobContext, user_id: Ulid) -> Result<Vec<Job>, JobError> {
    let _guard = ctx.jobs.lock_user(user_id).await;
    let mut conn = ctx.db.pool().acquire().await?;
    let user = user(&mut conn, user_id).await?;
    let devices = device_set(&mut conn, user_id).await?;
    drop(conn);
    ctx.homeserver
        .sync_devices(&user.username, &devices)
        .await?;
    Ok(Vec::new())
}

/// `delete-device`: deletes the device unless an active session holds it again (a client
/// that logged in anew with the same device ID). A user the homeserver does not know has no
/// devices: done.
async fn delete_device(
    ctx: &JobContext,
    user_id: Ulid,
    device_id: &str,
) -> Result<Vec<Job>, JobError> {
    let _guard = ctx.jobs.lock_user(user_id).await;
    let mut conn = ctx.db.pool().acquire().await?;
    let user = user(&mut conn, user_id).await?;
    if device_set(&mut conn, user_id).await?.contains(device_id) {
        tracing::info!(user.id = %user_id, device_id, "device in use again; not deleted");
        return Ok(Vec::new());
    }
    drop(conn);
    match ctx
        .homeserver
        .delete_device(&user.username, device_id)
        .await
    {
        Err(error) if error.is_not_found() => Ok(Vec::new()),
        result => result.map(|()| Vec::new()).map_err(JobError::from),
    }
}

/// `deactivate-user`: queued in the transaction that marked the user deactivated. Ends what
/// is left of its sessions and removes its emails (idempotent), then `delete_user`. Does
/// nothing if the user was reactivated since.
async fn deactivate_user(
    ctx: &JobContext,
    user_id: Ulid,
    erase: bool,
) -> Result<Vec<Job>, JobError> {
    let mut tx = ctx.db.begin_write().await?;
    let user = user(&mut tx, user_id).await?;
    if user.deactivated_at.is_none() {
        tracing::info!(user.id = %user_id, "user reactivated since; not deactivated");
        return Ok(Vec::new());
    }
    let clock = ctx.clock.as_ref();
    oauth2_sessions::finish_all_oauth2_sessions(&mut tx, clock, user_id).await?;
    crate::storage::compat::finish_all_compat_sessions(&mut tx, clock, user_id).await?;
    browser_sessions::finish_all_browser_sessions(&mut tx, clock, user_id).await?;
    emails::remove_all_emails(&mut tx, user_id).await?;
    tx.commit().await?;
    match ctx.homeserver.delete_user(&user.username, erase).await {
        Err(error) if error.is_not_found() => Ok(Vec::new()),
        result => result.map(|()| Vec::new()).map_err(JobError::from),
    }
}

/// `reactivate-user`: `reactivate_user`, then a provisioning pass (locked flag, emails).
/// Does nothing if the user was deactivated again since.
async fn reactivate_user(ctx: &JobContext, user_id: Ulid) -> Result<Vec<Job>, JobError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let user = user(&mut conn, user_id).await?;
    drop(conn);
    if user.deactivated_at.is_some() {
        tracing::info!(user.id = %user_id, "user deactivated again since; not reactivated");
        return Ok(Vec::new());
    }
    ctx.homeserver.reactivate_user(&user.username).await?;
    Ok(vec![Job::ProvisionUser { user_id }])
}

/// Mails the code of an email authentication, unless it was completed or expired meanwhile
/// (then there is nothing to send). Mail being off can never succeed; a relay that refuses or
/// cannot be reached is retried while the code is still valid.
async fn send_email_authentication_code(
    ctx: &JobContext,
    authentication_id: Ulid,
) -> Result<Vec<Job>, JobError> {
    let Some(mail) = ctx.mail.as_deref() else {
        return Err(JobError::Transient(
            "mail is sent by the server, not here".to_owned(),
        ));
    };
    let mut conn = ctx.db.pool().acquire().await?;
    let Some(authentication) =
        email_authentications::find_email_authentication(&mut conn, authentication_id).await?
    else {
        return Err(JobError::Permanent(format!(
            "no email authentication {authentication_id}"
        )));
    };
    drop(conn);
    let now = ctx.clock.now_unix_ms();
    if authentication.completed_at.is_some() || authentication.is_expired(now) {
        tracing::info!(user_email_authentication.id = %authentication_id, "code no longer usable; not mailed");
        return Ok(Vec::new());
    }
    let context = VerificationMail {
        server_name: mail.server_name.clone(),
        email: authentication.email.clone(),
        code: authentication.code.clone(),
        valid_minutes: EMAIL_CODE_LIFETIME_MS / 60_000,
        for_registration: matches!(
            authentication.purpose,
            EmailAuthenticationPurpose::Registration { .. }
        ),
        base_url: mail.urls.base().to_string(),
    };
    let rendered = mail
        .templates
        .render_mail_verification(&context)
        .map_err(|error| JobError::Failed(ErrorChain(&error).to_string()))?;
    send(mail, &authentication.email, rendered).await?;
    Ok(Vec::new())
}

/// `send-recovery-emails`: for every verified address equal to the request's, of an account
/// that may log in (not locked, deactivated or a guest), a new ticket (only its SHA-256
/// stored) and a mail with its link. Nothing is mailed once the request was consumed. A retry
/// after a relay failure makes new tickets (and may mail an account twice; every link works).
async fn send_recovery_emails(ctx: &JobContext, session_id: Ulid) -> Result<Vec<Job>, JobError> {
    let Some(mail) = ctx.mail.as_deref() else {
        return Err(JobError::Transient(
            "mail is sent by the server, not here".to_owned(),
        ));
    };
    let mut conn = ctx.db.pool().acquire().await?;
    let Some(session) = recovery::find_recovery_session(&mut conn, session_id).await? else {
        return Err(JobError::Permanent(format!(
            "no recovery session {session_id}"
        )));
    };
    if session.consumed_at.is_some() {
        return Ok(Vec::new());
    }
    let addresses = emails::find_emails_by_address(&mut conn, &session.email).await?;
    let mut rng = ctx.rng.fork();
    let mut sent = 0;
    for address in addresses.into_iter().filter(|a| a.confirmed_at.is_some()) {
        let Some(user) = users::find_user(&mut conn, address.user_id).await? else {
            continue;
        };
        if check_account(&user).is_err() {
            tracing::info!(user.id = %user.id, "no recovery mail: the account may not log in");
            continue;
        }
        let ticket = random::recovery_ticket(&mut rng);
        let new = recovery::NewRecoveryTicket {
            session_id,
            user_email_id: address.id,
            user_id: user.id,
            ticket_sha256: &sha256_hex(&ticket),
        };
        recovery::add_recovery_ticket(&mut conn, ctx.clock.as_ref(), &mut rng, new).await?;
        let mut link = mail.urls.absolute(routes::RECOVER_COMPLETE);
        link.query_pairs_mut().append_pair("ticket", &ticket);
        let context = RecoveryMail {
            server_name: mail.server_name.clone(),
            email: address.email.clone(),
            mxid: ctx.homeserver.mxid(&user.username),
            link: link.to_string(),
            valid_minutes: RECOVERY_TICKET_LIFETIME_MS / 60_000,
            base_url: mail.urls.base().to_string(),
        };
        let rendered = mail
            .templates
            .render_mail_recovery(&context)
            .map_err(|error| JobError::Failed(ErrorChain(&error).to_string()))?;
        send(mail, &address.email, rendered).await?;
        sent += 1;
    }
    tracing::info!(user_recovery_session.id = %session_id, mails = sent, "recovery mails sent");
    Ok(Vec::new())
}

/// Sends a rendered message to `to`: mail off or an address that does not parse can never
/// succeed; anything else (the relay) is worth retrying.
async fn send(mail: &MailContext, to: &str, rendered: RenderedMail) -> Result<(), JobError> {
    let to = to
        .parse()
        .map_err(|e| JobError::Permanent(format!("recipient {to:?}: {e}")))?;
    let outgoing = Outgoing {
        to,
        subject: rendered.subject,
        text: rendered.text,
        html: Some(rendered.html),
    };
    match mail.mailer.send(outgoing).await {
        Ok(_) => Ok(()),
        Err(error @ (MailError::NotConfigured | MailError::Address { .. })) => {
            Err(JobError::Permanent(ErrorChain(&error).to_string()))
        }
        Err(error) => Err(JobError::Transient(ErrorChain(&error).to_string())),
    }
}
