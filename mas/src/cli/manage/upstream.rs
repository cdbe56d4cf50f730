//! `manage link-upstream USERNAME --provider ID --subject SUB`: makes an upstream provider's
//! subject log in as an existing user. This is what the "username already taken" page of an
//! upstream login (`on_conflict: fail`) tells the person the administrator can do; the refusal's
//! log line carries the provider id and the subject to use. A subject linked to another user
//! is refused unless `--replace`; its later sign-ins then log in as USERNAME.

use anyhow::Context as _;

use crate::storage::upstream_links::{self, NewUpstreamLink};

/// Arguments of `link-upstream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The existing user the subject logs in as.
    pub username: String,
    /// The provider's id (`upstream_oauth2.providers[].id`; the platform provider is
    /// 01J00000000000000000PR0V1D).
    #[arg(long)]
    pub provider: String,
    /// The subject at the provider (its `sub` claim, or what `claims_imports.subject` renders),
    /// as the refusal's log line shows it.
    #[arg(long)]
    pub subject: String,
    /// Move the subject from the user it is linked to now.
    #[arg(long)]
    pub replace: bool,
}

pub(super) async fn link(manage: &super::Manage, args: Args) -> anyhow::Result<Vec<String>> {
    let Args {
        username,
        provider,
        subject,
        replace,
    } = args;
    if provider.trim().is_empty() || subject.is_empty() {
        anyhow::bail!("--provider and --subject must not be empty");
    }
    let user = manage.user(&username).await?;
    let mxid = manage.mxid(&user.username);
    let mut tx = manage.ctx.db.begin_write().await?;
    let existing =
        upstream_links::find_upstream_link_by_subject(&mut tx, &provider, &subject).await?;
    match existing {
        Some(link) if link.user_id == Some(user.id) => {
            return Ok(vec![format!(
                "{subject:?} at {provider} is already linked to {username} ({mxid}); nothing \
                 changed."
            )]);
        }
        Some(link) if link.user_id.is_some() && !replace => {
            let other = match link.user_id {
                Some(id) => crate::storage::users::find_user(&mut tx, id)
                    .await?
                    .map_or_else(|| id.to_string(), |other| other.username),
                None => String::new(),
            };
            anyhow::bail!(
                "{subject:?} at {provider} is linked to {other}; pass --replace to move it to \
                 {username}"
            );
        }
        Some(link) => {
            if link.user_id.is_some() {
                upstream_links::unbind_upstream_link(&mut tx, link.id).await?;
            }
            let bound = upstream_links::bind_upstream_link(&mut tx, link.id, user.id).await?;
            anyhow::ensure!(bound, "the link changed meanwhile; try again");
        }
        None => {
            let mut rng = manage.ctx.rng.fork();
            upstream_links::add_upstream_link(
                &mut tx,
                manage.ctx.clock.as_ref(),
                &mut rng,
                NewUpstreamLink {
                    provider_id: &provider,
                    subject: &subject,
                    user_id: Some(user.id),
                    human_account_name: None,
                },
            )
            .await
            .context("cannot link the subject")?;
        }
    }
    tx.commit().await?;
    Ok(vec![format!(
        "{subject:?} at {provider} now signs in as {username} ({mxid})."
    )])
}
