//! `manage add-email USERNAME EMAIL` and `manage verify-email USERNAME EMAIL`. Emails added
//! by an administrator are trusted: `add-email` stores them verified. Only verified emails
//! reach the homeserver (as 3PIDs), through a `provision-user` job.

use super::{Manage, queue, validate_email};
use crate::jobs::Job;
use crate::model::normalize_email;
use crate::storage::{StorageError, emails};

/// Arguments of `add-email` and `verify-email`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose address.
    pub username: String,
    /// The address.
    pub email: String,
}

pub(super) async fn add(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    validate_email(&args.email)?;
    let user = manage.user(&args.username).await?;
    let (clock, mut rng) = (manage.ctx.clock.as_ref(), manage.ctx.rng.fork());
    let mut tx = manage.ctx.db.begin_write().await?;
    match emails::add_email(&mut tx, clock, &mut rng, user.id, &args.email, true).await {
        Err(StorageError::EmailAlreadyAdded) => {
            anyhow::bail!(
                "{} already has the email address {}",
                user.username,
                args.email
            )
        }
        result => result?,
    };
    let job = queue(manage, &mut tx, &Job::ProvisionUser { user_id: user.id }).await?;
    tx.commit().await?;
    let mxid = manage.mxid(&user.username);
    let first = format!(
        "Added the email address {} to {} ({mxid}), verified.",
        args.email, user.username
    );
    let done = format!("Updated the emails of {mxid} in the homeserver.");
    Ok(vec![first, manage.run_jobs(&[job], &done).await?])
}

pub(super) async fn verify(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    let user = manage.user(&args.username).await?;
    let wanted = normalize_email(&args.email);
    let mut tx = manage.ctx.db.begin_write().await?;
    let email = emails::list_emails(&mut tx, user.id)
        .await?
        .into_iter()
        .find(|email| normalize_email(&email.email) == wanted);
    let Some(email) = email else {
        anyhow::bail!("{} has no email address {}", user.username, args.email);
    };
    let mxid = manage.mxid(&user.username);
    if email.confirmed_at.is_some() {
        return Ok(vec![format!(
            "The email address {} of {} ({mxid}) was already verified; nothing changed.",
            email.email, user.username
        )]);
    }
    emails::mark_email_confirmed(&mut tx, manage.ctx.clock.as_ref(), email.id).await?;
    let job = queue(manage, &mut tx, &Job::ProvisionUser { user_id: user.id }).await?;
    tx.commit().await?;
    let first = format!(
        "Verified the email address {} of {} ({mxid}).",
        email.email, user.username
    );
    let done = format!("Updated the emails of {mxid} in the homeserver.");
    Ok(vec![first, manage.run_jobs(&[job], &done).await?])
}
