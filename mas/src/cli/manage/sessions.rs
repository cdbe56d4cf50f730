//! `manage kill-sessions USERNAME [--dry-run]`: ends every OAuth and browser session of the
//! user in one transaction with a `sync-devices` job, which deletes the user's devices in the
//! homeserver (its tokens stop working there at once).

use super::{Manage, queue};
use crate::auth::sessions::end_all_sessions;
use crate::jobs::Job;

/// Arguments of `kill-sessions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose sessions.
    pub username: String,
    /// Only say how many sessions would end.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn kill(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    let user = manage.user(&args.username).await?;
    let clock = manage.ctx.clock.as_ref();
    let mut tx = manage.ctx.db.begin_write().await?;
    let ended = end_all_sessions(&mut tx, clock, user.id).await?;
    let total = ended.total();
    let breakdown = super::lock::breakdown(&ended);
    let noun = if total == 1 { "session" } else { "sessions" };
    let mxid = manage.mxid(&user.username);
    let name = &user.username;
    if args.dry_run {
        tx.rollback().await?;
        return Ok(vec![format!(
            "Would end {total} {noun} of {name} ({mxid}): {breakdown}; nothing changed (dry run)."
        )]);
    }
    let job = queue(manage, &mut tx, &Job::SyncDevices { user_id: user.id }).await?;
    tx.commit().await?;
    let first = format!("Ended {total} {noun} of {name} ({mxid}): {breakdown}.");
    let done = format!("Deleted the devices of {mxid} in the homeserver.");
    Ok(vec![first, manage.run_jobs(&[job], &done).await?])
}
