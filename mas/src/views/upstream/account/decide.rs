//! [`decide`]: the read-only half of settling an upstream login's account.

use sqlx::AnyConnection;

use super::{NewAccount, Plan, check_user, fixed_username, linked_user, needs_confirmation};
use super::{offered_display_name, offered_email};
use crate::error::HtmlError;
use crate::homeserver::HomeserverConnection;
use crate::model::User;
use crate::storage::{Database, upstream_links, users};
use crate::upstream::{ImportedClaims, OnConflict, Provider};
use crate::views::upstream::failure;

/// How a username stands for a new person.
#[derive(Debug)]
pub(in crate::views::upstream) enum UsernameCheck {
    /// Nobody has it: create the account.
    Free,
    /// A local user has it and `on_conflict` links the subject to them.
    Link {
        /// The user.
        user: Box<User>,
        /// Detach their other links to this provider first.
        replace: bool,
    },
    /// Taken; the reason for the log line.
    Taken(&'static str),
}

/// Whether `username` can be created, or (when `apply_on_conflict`) linked per `on_conflict`.
pub(in crate::views::upstream) async fn check_username(
    conn: &mut AnyConnection,
    homeserver: &dyn HomeserverConnection,
    provider: &Provider,
    username: &str,
    apply_on_conflict: bool,
) -> Result<UsernameCheck, HtmlError> {
    if let Some(user) = users::find_user_by_username(conn, username).await? {
        if !apply_on_conflict {
            return Ok(UsernameCheck::Taken("taken by a local account"));
        }
        let replace = match provider.claims().on_conflict {
            OnConflict::Fail => return Ok(UsernameCheck::Taken("taken by a local account")),
            OnConflict::Add => false,
            OnConflict::Replace => true,
            OnConflict::Set => {
                let links =
                    upstream_links::list_user_upstream_links(conn, user.id, &provider.id).await?;
                if !links.is_empty() {
                    return Ok(UsernameCheck::Taken(
                        "the local account is linked to another account of this provider",
                    ));
                }
                false
            }
        };
        return Ok(UsernameCheck::Link {
            user: Box::new(user),
            replace,
        });
    }
    // Synapse knows users MAS does not (an appservice's namespace, older accounts): never
    // take one over. When it cannot be asked, the provisioning job finds out later.
    match homeserver.is_localpart_available(username).await {
        Ok(true) => Ok(UsernameCheck::Free),
        Ok(false) => Ok(UsernameCheck::Taken("not available on the homeserver")),
        Err(error) => {
            tracing::info!(error = %error, "username availability not checked");
            Ok(UsernameCheck::Free)
        }
    }
}

/// A [`Plan`] and the subject's link that waits for a user, if there is one.
#[derive(Debug)]
pub(in crate::views::upstream) struct Decision {
    /// What to do.
    pub(in crate::views::upstream) plan: Plan,
    /// The subject's unbound link (from an unfinished confirmation), to reuse.
    pub(in crate::views::upstream) unbound: Option<ulid::Ulid>,
}

/// Picks the plan for a callback whose claims were imported: the subject's link, else the
/// username the provider fixes, as free here and at `homeserver` (Matrix IDs of
/// `server_name`). Read-only.
pub(in crate::views::upstream) async fn decide(
    db: &Database,
    homeserver: &dyn HomeserverConnection,
    server_name: &str,
    provider: &Provider,
    claims: &ImportedClaims,
) -> Result<Decision, HtmlError> {
    let mut conn = db.acquire().await?;
    let link =
        upstream_links::find_upstream_link_by_subject(&mut conn, &provider.id, &claims.subject)
            .await?;
    let unbound = link
        .as_ref()
        .filter(|link| link.user_id.is_none())
        .map(|link| link.id);
    let plan = plan(&mut conn, homeserver, server_name, provider, claims, link).await?;
    Ok(Decision { plan, unbound })
}

async fn plan(
    conn: &mut AnyConnection,
    homeserver: &dyn HomeserverConnection,
    server_name: &str,
    provider: &Provider,
    claims: &ImportedClaims,
    link: Option<crate::model::UpstreamLink>,
) -> Result<Plan, HtmlError> {
    if let Some(link) = link
        && let Some(user_id) = link.user_id
    {
        let user = linked_user(conn, provider, link.id, user_id).await?;
        return Ok(Plan::Linked {
            link_id: link.id,
            user: Box::new(user),
        });
    }
    let confirm = needs_confirmation(provider);
    let Some(username) = fixed_username(claims) else {
        if confirm {
            return Ok(Plan::Confirm);
        }
        return Err(failure::claims_error(
            provider,
            &crate::upstream::ClaimsError::MissingRequired {
                attribute: "localpart",
            },
        ));
    };
    // The claims import checks the grammar; the length depends on the server name. Synapse
    // refuses a Matrix ID over 255 characters, so the account could never be provisioned.
    if username.len() + server_name.len() + 2 > 255 {
        return Err(failure::claims_error(
            provider,
            &crate::upstream::ClaimsError::InvalidLocalpart {
                value: username.to_owned(),
            },
        ));
    }
    match check_username(conn, homeserver, provider, username, true).await? {
        UsernameCheck::Taken(why) => Err(failure::localpart_conflict(
            provider,
            username,
            &claims.subject,
            why,
        )),
        UsernameCheck::Link { user, replace } => {
            check_user(provider, &user)?;
            Ok(Plan::LinkExisting { user, replace })
        }
        UsernameCheck::Free if confirm => Ok(Plan::Confirm),
        UsernameCheck::Free => Ok(Plan::Create(NewAccount {
            username: username.to_owned(),
            display_name: offered_display_name(claims).map(str::to_owned),
            email: offered_email(claims).map(str::to_owned),
        })),
    }
}
