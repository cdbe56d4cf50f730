//! `manage lock-user USERNAME [--deactivate]` and `manage unlock-user USERNAME [--reactivate]`.
//!
//! Locking ends every session of the user (OAuth and browser) in the same transaction, and
//! queues a device sync (deleting its devices in the homeserver) and a provisioning pass (the
//! locked flag). Deactivating also removes the user's emails and queues `deactivate-user`
//! (`delete_user` in the homeserver, which takes the devices and tokens with it).

use super::{Manage, queue};
use crate::auth::sessions::{EndedSessions, end_all_sessions};
use crate::jobs::Job;
use crate::storage::{emails, users};

/// Arguments of `lock-user`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Whom to lock.
    pub username: String,
    /// Also deactivate the account (in the homeserver too).
    #[arg(long)]
    pub deactivate: bool,
}

/// Arguments of `unlock-user`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// Whom to unlock.
    pub username: String,
    /// Also reactivate a deactivated account (in the homeserver too).
    #[arg(long)]
    pub reactivate: bool,
}

pub(super) async fn lock(manage: &Manage, args: LockArgs) -> anyhow::Result<Vec<String>> {
    let user = manage.user(&args.username).await?;
    let clock = manage.ctx.clock.as_ref();
    let mut tx = manage.ctx.db.begin_write().await?;
    users::lock_user(&mut tx, clock, user.id).await?;
    let ended = end_all_sessions(&mut tx, clock, user.id).await?;
    let jobs = if args.deactivate {
        users::deactivate_user(&mut tx, clock, user.id).await?;
        emails::remove_all_emails(&mut tx, user.id).await?;
        let deactivate = Job::DeactivateUser {
            user_id: user.id,
            hs_erase: false,
        };
        vec![queue(manage, &mut tx, &deactivate).await?]
    } else {
        // The sync first: ending access matters more than the locked flag.
        vec![
            queue(manage, &mut tx, &Job::SyncDevices { user_id: user.id }).await?,
            queue(manage, &mut tx, &Job::ProvisionUser { user_id: user.id }).await?,
        ]
    };
    tx.commit().await?;

    let mxid = manage.mxid(&user.username);
    let verb = match (args.deactivate, user.locked_at.is_some()) {
        (true, _) => "Locked and deactivated",
        (false, false) => "Locked",
        (false, true) => "Locked (already locked)",
    };
    let first = format!(
        "{verb} {} ({mxid}) and ended {}.",
        user.username,
        describe_ended(&ended),
    );
    let done = if args.deactivate {
        format!("Deactivated {mxid} in the homeserver.")
    } else {
        format!("Deleted the devices of {mxid} and locked it in the homeserver.")
    };
    Ok(vec![first, manage.run_jobs(&jobs, &done).await?])
}

pub(super) async fn unlock(manage: &Manage, args: UnlockArgs) -> anyhow::Result<Vec<String>> {
    let user = manage.user(&args.username).await?;
    let mut tx = manage.ctx.db.begin_write().await?;
    users::unlock_user(&mut tx, user.id).await?;
    let reactivate = args.reactivate && user.deactivated_at.is_some();
    let job = if reactivate {
        users::reactivate_user(&mut tx, user.id).await?;
        Job::ReactivateUser { user_id: user.id }
    } else {
        Job::ProvisionUser { user_id: user.id }
    };
    let job = queue(manage, &mut tx, &job).await?;
    tx.commit().await?;

    let mxid = manage.mxid(&user.username);
    let name = &user.username;
    let first = match (reactivate, user.deactivated_at.is_some()) {
        (true, _) => format!("Unlocked and reactivated {name} ({mxid})."),
        (false, true) => {
            format!("Unlocked {name} ({mxid}); the account stays deactivated (use --reactivate).")
        }
        (false, false) if user.locked_at.is_none() => {
            format!("{name} ({mxid}) was not locked; nothing changed.")
        }
        (false, false) => format!("Unlocked {name} ({mxid})."),
    };
    let done = if reactivate {
        format!("Reactivated {mxid} in the homeserver.")
    } else {
        format!("Unlocked {mxid} in the homeserver.")
    };
    Ok(vec![first, manage.run_jobs(&[job], &done).await?])
}

/// `N session(s) (N OAuth, [N compatibility, ]N browser)`: compat sessions are named only
/// when there were some.
fn describe_ended(ended: &EndedSessions) -> String {
    let total = ended.total();
    format!(
        "{total} {} ({})",
        if total == 1 { "session" } else { "sessions" },
        breakdown(ended),
    )
}

/// `N OAuth, [N compatibility, ]N browser`.
pub(super) fn breakdown(ended: &EndedSessions) -> String {
    let compat = if ended.compat == 0 {
        String::new()
    } else {
        format!("{} compatibility, ", ended.compat)
    };
    format!("{} OAuth, {compat}{} browser", ended.oauth2, ended.browser)
}
