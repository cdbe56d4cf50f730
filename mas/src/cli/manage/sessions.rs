//! `manage kill-sessions USERNAME [--dry-run]`: ends every OAuth and browser session of the
//! user in one transaction with a `sync-devices` job, which deletes the user's devices in the
//! homeserver (its tokens stop working there at once).

use super::{Manage, queue};
use crate::jobs::Job;
use crate::storage::{browser_sessions, compat, oauth2_sessions};

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
    let oauth = oauth2_sessions::finish_all_oauth2_sessions(&mut tx, clock, user.id).await?;
    let browser = browser_sessions::finish_all_browser_sessions(&mut tx, clock, user.id).await?;
    let compat = compat::finish_all_compat_sessions(&mut tx, clock, user.id).await?;
    let ended = oauth + browser + compat;
    let compat_part = super::lock::compat_part(compat);
    let noun = if ended == 1 { "session" } else { "sessions" };
    let mxid = manage.mxid(&user.username);
    let name = &user.username;
    if args.dry_run {
        tx.rollback().await?;
        return Ok(vec![format!(
            "Would end {ended} {noun} of {name} ({mxid}): {oauth} OAuth, {compat_part}{browser} browser; \
             nothing changed (dry run)."
        )]);
    }
    let job = queue(manage, &mut tx, &Job::SyncDevices { user_id: user.id }).await?;
    tx.commit().await?;
    let first = format!(
        "Ended {ended} {noun} of {name} ({mxid}): {oauth} OAuth, {compat_part}{browser} browser."
    );
    let done = format!("Deleted the devices of {mxid} in the homeserver.");
    Ok(vec![first, manage.run_jobs(&[job], &done).await?])
}
