//! [`execute`]: the writing half of settling an upstream login's account, in the caller's
//! transaction.

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::{NewAccount, Plan, linked_user};
use crate::clock::Clock;
use crate::error::HtmlError;
use crate::jobs::{self, Job};
use crate::model::User;
use crate::rng::RngSource;
use crate::storage::upstream_links::{self, NewUpstreamLink};
use crate::storage::{StorageError, emails, users};
use crate::upstream::{ImportedClaims, Provider};
use crate::views::upstream::failure;

/// What [`execute`] did.
#[derive(Debug)]
pub(in crate::views::upstream) struct Executed {
    /// The subject's link.
    pub(in crate::views::upstream) link_id: Ulid,
    /// The user to log in as; `None` for [`Plan::Confirm`].
    pub(in crate::views::upstream) user: Option<User>,
    /// Whether a job was queued (wake the worker after the commit).
    pub(in crate::views::upstream) queued_job: bool,
}

/// Carries out `plan` in `tx`: the link (reusing the subject's unbound link `unbound`, if
/// any), and for a new account the user, its verified email and its provisioning job. The
/// subject's link is looked up again first: when a concurrent login (another tab) bound it
/// meanwhile, this one logs in as that user instead. A race lost otherwise (the username
/// taken meanwhile) is a refusal; the caller's transaction then rolls back.
pub(in crate::views::upstream) async fn execute(
    tx: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &RngSource,
    provider: &Provider,
    claims: &ImportedClaims,
    unbound: Option<Ulid>,
    plan: Plan,
) -> Result<Executed, HtmlError> {
    // One generator for the account's rows, forked first (as the link's own comes after it).
    let mut rng_for_account = rng.fork();
    let mut unbound = unbound;
    if !matches!(plan, Plan::Linked { .. }) {
        match settled_meanwhile(tx, provider, claims).await? {
            Meanwhile::Linked(executed) => return Ok(executed),
            Meanwhile::Waiting(link_id) => unbound = Some(link_id),
            Meanwhile::Nothing => {}
        }
    }
    let subject = Subject {
        clock,
        rng,
        provider,
        claims,
    };
    let (user, queued_job) = match plan {
        Plan::Linked { link_id, user } => {
            return Ok(Executed {
                link_id,
                user: Some(*user),
                queued_job: false,
            });
        }
        Plan::Confirm => {
            let link_id = match unbound {
                Some(id) => id,
                None => subject.add_link(tx, None).await?,
            };
            return Ok(Executed {
                link_id,
                user: None,
                queued_job: false,
            });
        }
        Plan::LinkExisting { user, replace } => {
            link_existing(tx, provider, &user, replace).await?;
            (*user, false)
        }
        Plan::Create(account) => {
            let user = subject
                .create_account(tx, &mut rng_for_account, &account)
                .await?;
            (user, true)
        }
    };
    let link_id = subject.bind_link(tx, unbound, &user).await?;
    Ok(Executed {
        link_id,
        user: Some(user),
        queued_job,
    })
}

/// The upstream subject being settled, with the clock and randomness of what is written.
struct Subject<'a> {
    clock: &'a dyn Clock,
    rng: &'a RngSource,
    provider: &'a Provider,
    claims: &'a ImportedClaims,
}

/// Links the subject to an existing `user` (detaching the user's other links to this
/// provider first when `replace`).
async fn link_existing(
    tx: &mut AnyConnection,
    provider: &Provider,
    user: &User,
    replace: bool,
) -> Result<(), HtmlError> {
    if replace {
        let detached =
            upstream_links::unbind_user_upstream_links(tx, user.id, &provider.id, None).await?;
        tracing::info!(user.id = %user.id, detached, "on_conflict replace: links detached");
    }
    tracing::info!(user.id = %user.id, "upstream subject linked to an existing user");
    Ok(())
}

impl Subject<'_> {
    /// Creates `account`: the user, its verified email and its provisioning job.
    async fn create_account(
        &self,
        tx: &mut AnyConnection,
        rng: &mut impl RngCore,
        account: &NewAccount,
    ) -> Result<User, HtmlError> {
        let clock = self.clock;
        let user = match users::add_user(tx, clock, rng, &account.username).await {
            Err(StorageError::UsernameTaken) => {
                return Err(failure::localpart_conflict(
                    self.provider,
                    &account.username,
                    &self.claims.subject,
                    "taken meanwhile",
                ));
            }
            result => result?,
        };
        if let Some(email) = &account.email {
            emails::add_email(tx, clock, rng, user.id, email, true).await?;
        }
        let job = match &account.display_name {
            Some(display_name) => Job::ProvisionUserWithDisplayName {
                user_id: user.id,
                display_name: display_name.clone(),
            },
            None => Job::ProvisionUser { user_id: user.id },
        };
        jobs::queue(tx, clock, rng, &job).await?;
        tracing::info!(
            user.id = %user.id,
            user.username = %user.username,
            email = account.email.is_some(),
            display_name = account.display_name.is_some(),
            "account created from an upstream login"
        );
        Ok(user)
    }

    /// Binds the subject's `unbound` link to `user`, or adds a bound link when there is none.
    async fn bind_link(
        &self,
        tx: &mut AnyConnection,
        unbound: Option<Ulid>,
        user: &User,
    ) -> Result<Ulid, HtmlError> {
        let Some(id) = unbound else {
            return self.add_link(tx, Some(user.id)).await;
        };
        if !upstream_links::bind_upstream_link(tx, id, user.id).await? {
            return Err(failure::replayed(
                &self.provider.id,
                "the link was bound meanwhile",
            ));
        }
        Ok(id)
    }

    /// A new link of the subject; a concurrent login that created it first wins.
    async fn add_link(
        &self,
        tx: &mut AnyConnection,
        user_id: Option<Ulid>,
    ) -> Result<Ulid, HtmlError> {
        let mut rng = self.rng.fork();
        let new = NewUpstreamLink {
            provider_id: &self.provider.id,
            subject: &self.claims.subject,
            user_id,
            human_account_name: self.claims.account_name.as_deref(),
        };
        match upstream_links::add_upstream_link(tx, self.clock, &mut rng, new).await {
            Ok(link) => Ok(link.id),
            Err(StorageError::UpstreamLinkExists) => Err(failure::replayed(
                &self.provider.id,
                "the subject was linked by a concurrent login",
            )),
            Err(error) => Err(HtmlError::internal(error)),
        }
    }
}

/// What happened to the subject's link since [`decide`] looked.
enum Meanwhile {
    /// Another tab bound it: log in as that user.
    Linked(Executed),
    /// It exists without a user (another tab waits at the confirmation page).
    Waiting(Ulid),
    /// Still no link.
    Nothing,
}

/// Looks the subject's link up again inside the write transaction.
async fn settled_meanwhile(
    tx: &mut AnyConnection,
    provider: &Provider,
    claims: &ImportedClaims,
) -> Result<Meanwhile, HtmlError> {
    let link =
        upstream_links::find_upstream_link_by_subject(tx, &provider.id, &claims.subject).await?;
    let Some(link) = link else {
        return Ok(Meanwhile::Nothing);
    };
    let Some(user_id) = link.user_id else {
        return Ok(Meanwhile::Waiting(link.id));
    };
    let user = linked_user(tx, provider, link.id, user_id).await?;
    Ok(Meanwhile::Linked(Executed {
        link_id: link.id,
        user: Some(user),
        queued_job: false,
    }))
}
