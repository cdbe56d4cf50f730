//! `manage promote-admin USERNAME` / `manage demote-admin USERNAME`: whether the user may ask
//! for Synapse's admin scope (`urn:synapse:admin:*`), as upstream MAS's verbs of the same
//! names. Promotion is how a user who signed in through single sign-on becomes the admin:
//! their next session (e.g. an admin tool's login) may carry the admin scope. Demotion stops new
//! admin sessions; sessions that already hold the scope keep it until they end
//! (`kill-sessions` ends them at once).

use crate::storage::users;

/// Arguments of `promote-admin` and `demote-admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which user.
    pub username: String,
}

pub(super) async fn promote(manage: &super::Manage, args: Args) -> anyhow::Result<Vec<String>> {
    set(manage, &args.username, true).await
}

pub(super) async fn demote(manage: &super::Manage, args: Args) -> anyhow::Result<Vec<String>> {
    set(manage, &args.username, false).await
}

async fn set(manage: &super::Manage, username: &str, admin: bool) -> anyhow::Result<Vec<String>> {
    let user = manage.user(username).await?;
    let mxid = manage.mxid(&user.username);
    if user.can_request_admin == admin {
        let state = if admin { "already" } else { "not" };
        return Ok(vec![format!(
            "{username} ({mxid}) is {state} an admin; nothing changed."
        )]);
    }
    let mut tx = manage.ctx.db.begin_write().await?;
    users::set_can_request_admin(&mut tx, user.id, admin).await?;
    tx.commit().await?;
    Ok(vec![if admin {
        format!(
            "{username} ({mxid}) may now ask for Synapse admin rights \
             (urn:synapse:admin:*) when signing in."
        )
    } else {
        format!(
            "{username} ({mxid}) may no longer ask for Synapse admin rights; sessions that \
             have them keep them until they end (kill-sessions {username} ends them now)."
        )
    }])
}
