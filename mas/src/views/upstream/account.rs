//! Settling the account of a verified upstream login (upstream MAS's `claims_imports`;
//! docs/protocol.md#upstream-login): [`decide`] reads what exists (the subject's link, a local user
//! with the imported username, the homeserver's view of that username) and picks a [`Plan`];
//! [`execute`] carries it out in the caller's write transaction; [`log_in`] then consumes the
//! authorization session, starts (or re-authenticates) the browser session and continues the
//! post-auth action.
//!
//! `on_conflict` applies only to a username the provider fixes (`force`/`require`): a name the
//! person typed on the confirmation page never links to someone else's account.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use sqlx::AnyConnection;
use ulid::Ulid;

use super::failure;
use crate::app::AppState;
use crate::auth::account::{AccountRefusal, check_account};
use crate::auth::post_auth::PostAuthAction;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::jobs::{self, Job};
use crate::model::{AuthenticationMethod, UpstreamSession, User};
use crate::storage::upstream_links::{self, NewUpstreamLink};
use crate::storage::{StorageError, browser_sessions, emails, upstream_sessions, users};
use crate::upstream::{ImportAction, ImportedClaims, OnConflict, Provider};

/// The browser a login happens in, for the new browser session.
#[derive(Debug, Clone, Default)]
pub(super) struct BrowserInfo {
    /// Its `User-Agent`.
    pub(super) user_agent: Option<String>,
    /// Its address.
    pub(super) ip: Option<String>,
}

/// The account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewAccount {
    /// The Matrix localpart.
    pub(super) username: String,
    /// The display name to set in the homeserver.
    pub(super) display_name: Option<String>,
    /// A verified email address to store.
    pub(super) email: Option<String>,
}

/// What to do with a verified login.
#[derive(Debug)]
pub(super) enum Plan {
    /// The subject is linked to this (valid) user: log in.
    Linked {
        /// The link.
        link_id: Ulid,
        /// Its user.
        user: Box<User>,
    },
    /// Link the subject to this existing (valid) user (`on_conflict` add/replace/set).
    LinkExisting {
        /// The user the username belongs to.
        user: Box<User>,
        /// Detach the user's other links to this provider first (`replace`).
        replace: bool,
    },
    /// Create the account now.
    Create(NewAccount),
    /// Ask the person first (the confirmation page).
    Confirm,
}

/// Whether the provider's settings ask for the confirmation page.
pub(super) fn needs_confirmation(provider: &Provider) -> bool {
    let imports = provider.claims();
    !imports.skip_confirmation
        || [imports.localpart, imports.displayname, imports.email].contains(&ImportAction::Suggest)
}

/// The username the provider fixes (`force` or `require`d, and present).
pub(super) fn fixed_username(claims: &ImportedClaims) -> Option<&str> {
    matches!(
        claims.localpart.action,
        ImportAction::Force | ImportAction::Require
    )
    .then_some(claims.localpart.value.as_deref())
    .flatten()
}

/// A claim's value when its action imports it (anything but `ignore`).
fn imported(value: &crate::upstream::Imported) -> Option<&str> {
    (value.action != ImportAction::Ignore)
        .then_some(value.value.as_deref())
        .flatten()
}

/// The display name the claims offer.
pub(super) fn offered_display_name(claims: &ImportedClaims) -> Option<&str> {
    imported(&claims.displayname)
}

/// The (verified) email address the claims offer.
pub(super) fn offered_email(claims: &ImportedClaims) -> Option<&str> {
    imported(&claims.email).filter(|_| claims.email_verified)
}

/// The refusal of a login as `user`: deactivated, locked or a guest.
pub(super) fn check_user(provider: &Provider, user: &User) -> Result<(), HtmlError> {
    check_account(user).map_err(|refusal| match refusal {
        AccountRefusal::Deactivated => {
            failure::account_unavailable(provider, &user.username, "user_deactivated")
        }
        AccountRefusal::Locked => failure::account_locked(provider, &user.username),
        AccountRefusal::Guest => {
            failure::account_unavailable(provider, &user.username, "guest_user")
        }
    })
}

/// How a username stands for a new person.
#[derive(Debug)]
pub(super) enum UsernameCheck {
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
pub(super) async fn check_username(
    state: &AppState,
    conn: &mut AnyConnection,
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
    match state.homeserver.is_localpart_available(username).await {
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
pub(super) struct Decision {
    /// What to do.
    pub(super) plan: Plan,
    /// The subject's unbound link (from an unfinished confirmation), to reuse.
    pub(super) unbound: Option<Ulid>,
}

/// Picks the plan for a callback whose claims were imported. Read-only.
pub(super) async fn decide(
    state: &AppState,
    provider: &Provider,
    claims: &ImportedClaims,
) -> Result<Decision, HtmlError> {
    let mut conn = state.db.acquire().await?;
    let link =
        upstream_links::find_upstream_link_by_subject(&mut conn, &provider.id, &claims.subject)
            .await?;
    let unbound = link
        .as_ref()
        .filter(|link| link.user_id.is_none())
        .map(|link| link.id);
    let plan = plan(state, &mut conn, provider, claims, link).await?;
    Ok(Decision { plan, unbound })
}

async fn plan(
    state: &AppState,
    conn: &mut AnyConnection,
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
    if username.len() + state.site.server_name.len() + 2 > 255 {
        return Err(failure::claims_error(
            provider,
            &crate::upstream::ClaimsError::InvalidLocalpart {
                value: username.to_owned(),
            },
        ));
    }
    match check_username(state, conn, provider, username, true).await? {
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

/// What [`execute`] did.
#[derive(Debug)]
pub(super) struct Executed {
    /// The subject's link.
    pub(super) link_id: Ulid,
    /// The user to log in as; `None` for [`Plan::Confirm`].
    pub(super) user: Option<User>,
    /// Whether a job was queued (wake the worker after the commit).
    pub(super) queued_job: bool,
}

/// Carries out `plan` in `tx`: the link (reusing the subject's unbound link `unbound`, if
/// any), and for a new account the user, its verified email and its provisioning job. The
/// subject's link is looked up again first: when a concurrent login (another tab) bound it
/// meanwhile, this one logs in as that user instead. A race lost otherwise (the username
/// taken meanwhile) is a refusal; the caller's transaction then rolls back.
pub(super) async fn execute(
    state: &AppState,
    tx: &mut AnyConnection,
    provider: &Provider,
    claims: &ImportedClaims,
    unbound: Option<Ulid>,
    plan: Plan,
) -> Result<Executed, HtmlError> {
    let clock = state.clock.as_ref();
    let mut rng = state.rng.fork();
    let mut unbound = unbound;
    if !matches!(plan, Plan::Linked { .. }) {
        match settled_meanwhile(tx, provider, claims).await? {
            Meanwhile::Linked(executed) => return Ok(executed),
            Meanwhile::Waiting(link_id) => unbound = Some(link_id),
            Meanwhile::Nothing => {}
        }
    }
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
                None => add_link(state, tx, provider, claims, None).await?,
            };
            return Ok(Executed {
                link_id,
                user: None,
                queued_job: false,
            });
        }
        Plan::LinkExisting { user, replace } => {
            if replace {
                let detached =
                    upstream_links::unbind_user_upstream_links(tx, user.id, &provider.id, None)
                        .await?;
                tracing::info!(user.id = %user.id, detached, "on_conflict replace: links detached");
            }
            tracing::info!(user.id = %user.id, "upstream subject linked to an existing user");
            (*user, false)
        }
        Plan::Create(account) => {
            let user = match users::add_user(tx, clock, &mut rng, &account.username).await {
                Err(StorageError::UsernameTaken) => {
                    return Err(failure::localpart_conflict(
                        provider,
                        &account.username,
                        &claims.subject,
                        "taken meanwhile",
                    ));
                }
                result => result?,
            };
            if let Some(email) = &account.email {
                emails::add_email(tx, clock, &mut rng, user.id, email, true).await?;
            }
            let job = match &account.display_name {
                Some(display_name) => Job::ProvisionUserWithDisplayName {
                    user_id: user.id,
                    display_name: display_name.clone(),
                },
                None => Job::ProvisionUser { user_id: user.id },
            };
            jobs::queue(tx, clock, &mut rng, &job).await?;
            tracing::info!(
                user.id = %user.id,
                user.username = %user.username,
                email = account.email.is_some(),
                display_name = account.display_name.is_some(),
                "account created from an upstream login"
            );
            (user, true)
        }
    };
    let link_id = match unbound {
        Some(id) => {
            if !upstream_links::bind_upstream_link(tx, id, user.id).await? {
                return Err(failure::replayed(
                    &provider.id,
                    "the link was bound meanwhile",
                ));
            }
            id
        }
        None => add_link(state, tx, provider, claims, Some(user.id)).await?,
    };
    Ok(Executed {
        link_id,
        user: Some(user),
        queued_job,
    })
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

/// The user bound to the link `link_id`, checked as allowed to log in.
async fn linked_user(
    conn: &mut AnyConnection,
    provider: &Provider,
    link_id: Ulid,
    user_id: Ulid,
) -> Result<User, HtmlError> {
    let user = users::find_user(conn, user_id)
        .await?
        .ok_or_else(|| HtmlError::internal(format!("link {link_id} has no user")))?;
    check_user(provider, &user)?;
    Ok(user)
}

/// A new link of the subject; a concurrent login that created it first wins.
async fn add_link(
    state: &AppState,
    tx: &mut AnyConnection,
    provider: &Provider,
    claims: &ImportedClaims,
    user_id: Option<Ulid>,
) -> Result<Ulid, HtmlError> {
    let mut rng = state.rng.fork();
    let new = NewUpstreamLink {
        provider_id: &provider.id,
        subject: &claims.subject,
        user_id,
        human_account_name: claims.account_name.as_deref(),
    };
    match upstream_links::add_upstream_link(tx, state.clock.as_ref(), &mut rng, new).await {
        Ok(link) => Ok(link.id),
        Err(StorageError::UpstreamLinkExists) => Err(failure::replayed(
            &provider.id,
            "the subject was linked by a concurrent login",
        )),
        Err(error) => Err(HtmlError::internal(error)),
    }
}

/// Ends a successful login: consumes the authorization session (once), starts a browser session for
/// `user` (or re-authenticates the browser's current one of the same user), records the
/// upstream authentication, commits, and sends the browser on to the post-auth action.
pub(super) async fn log_in(
    state: &AppState,
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    mut jar: CookieJar,
    session: &UpstreamSession,
    user: &User,
    browser: &BrowserInfo,
    queued_job: bool,
) -> Result<Response, HtmlError> {
    let clock = state.clock.as_ref();
    let mut rng = state.rng.fork();
    if !upstream_sessions::consume_upstream_session(&mut tx, clock, session.id).await? {
        return Err(failure::replayed(
            &session.provider_id,
            "the authorization session was used already",
        ));
    }
    let current = load_session(&mut tx, &jar).await?;
    let browser_session = match current {
        Some(current) if current.user.id == user.id => current,
        _ => {
            browser_sessions::start_browser_session(
                &mut tx,
                clock,
                &mut rng,
                user,
                browser.user_agent.as_deref(),
                browser.ip.as_deref(),
            )
            .await?
        }
    };
    browser_sessions::record_authentication(
        &mut tx,
        clock,
        &mut rng,
        browser_session.id,
        AuthenticationMethod::Upstream {
            upstream_oauth_authorization_session_id: session.id,
        },
    )
    .await?;
    tx.commit().await?;
    if queued_job {
        state.jobs.wake();
    }
    tracing::info!(
        provider = %session.provider_id,
        user.id = %user.id,
        user_session.id = %browser_session.id,
        "logged in through an upstream provider"
    );
    // The session stays listed in the `upstream-oauth2-sessions` cookie until it expires, so
    // that a replay of the provider's answer (the back button) is told apart as `replayed`.
    jar.set_session(&mut rng, browser_session.id)
        .map_err(HtmlError::internal)?;
    let action = session
        .post_auth_action
        .as_ref()
        .and_then(PostAuthAction::from_json);
    let destination = PostAuthAction::destination(action.as_ref(), &state.urls);
    Ok((StatusCode::SEE_OTHER, jar, Redirect::to(&destination)).into_response())
}
