//! `mas-cli manage …`: administer users from the command line (upstream MAS's `manage` verbs;
//! docs/architecture.md#a-cli-verb).
//!
//! Every verb validates its input first and fails with one line before changing anything;
//! then writes its change in one transaction together with the jobs that carry it to the
//! homeserver; then runs those jobs at once from this process, so the homeserver is up to
//! date when the command returns. When the homeserver cannot be reached the jobs stay queued
//! and `mas-cli server` retries them. Output: one line saying what was done, one saying what
//! happened in the homeserver.

mod admin;
mod compat_token;
mod email;
mod lock;
mod password;
mod register;
mod sessions;
#[cfg(test)]
mod tests;
mod upstream;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::Subcommand;
use sqlx::AnyConnection;
use ulid::Ulid;

use crate::clock::SystemClock;
use crate::config::RootConfig;
use crate::crypto::passwords::PasswordManager;
use crate::homeserver::SynapseConnection;
use crate::jobs::{self, Job, JobContext, JobWaker, Outcome, RunReport};
use crate::model::User;
use crate::rng::RngSource;
use crate::storage::{self, Database, users};

/// `manage` verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a user (and provision it in the homeserver).
    RegisterUser(register::Args),
    /// Set a user's password.
    SetPassword(password::Args),
    /// Lock a user (ending its sessions), optionally deactivating it.
    LockUser(lock::LockArgs),
    /// Unlock a user, optionally reactivating it.
    UnlockUser(lock::UnlockArgs),
    /// Add a (verified) email address to a user.
    AddEmail(email::Args),
    /// Mark a user's email address verified.
    VerifyEmail(email::Args),
    /// End all sessions of a user (and delete its devices in the homeserver).
    KillSessions(sessions::Args),
    /// Issue a non-expiring compatibility access token (optionally with Synapse admin rights).
    IssueCompatibilityToken(compat_token::Args),
    /// Let a user ask for Synapse admin rights (e.g. one who signed in with single sign-on).
    PromoteAdmin(admin::Args),
    /// Stop a user from asking for Synapse admin rights.
    DemoteAdmin(admin::Args),
    /// Make an upstream provider's subject sign in as an existing user.
    LinkUpstream(upstream::Args),
}

/// What every verb works with.
pub(crate) struct Manage {
    /// Database, clock, randomness, homeserver: what running the jobs takes too.
    pub(crate) ctx: JobContext,
    /// Password hashing; `None` when `passwords.enabled` is false.
    pub(crate) passwords: Option<Arc<PasswordManager>>,
    /// The Matrix server name, for MXIDs.
    pub(crate) server_name: String,
    /// Whether a person can answer a question on standard input.
    pub(crate) interactive: bool,
}

pub(super) async fn run(command: Command, files: &[Utf8PathBuf]) -> anyhow::Result<ExitCode> {
    let config = super::load_valid(files, None)?;
    let manage = Manage::from_config(&config).await?;
    let outcome = manage.run(command).await;
    manage.ctx.db.close().await;
    let lines = outcome?;
    let mut text = lines.join("\n");
    text.push('\n');
    super::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

impl Manage {
    /// Connects to the database (refusing pending migrations) and sets up the homeserver
    /// client and password hashing from the configuration.
    async fn from_config(config: &RootConfig) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database).await?;
        storage::ensure_up_to_date(&db).await?;
        let homeserver = SynapseConnection::from_config(&config.matrix)?;
        let passwords = if config.passwords.enabled {
            Some(Arc::new(config.passwords.build_manager()?))
        } else {
            None
        };
        Ok(Self {
            ctx: JobContext {
                db,
                clock: Arc::new(SystemClock),
                rng: RngSource::from_entropy(),
                homeserver: Arc::new(homeserver),
                jobs: JobWaker::new(),
                mail: None,
            },
            passwords,
            server_name: config.matrix.homeserver.clone(),
            interactive: std::io::stdin().is_terminal(),
        })
    }

    /// Runs one verb; the lines to print.
    pub(crate) async fn run(&self, command: Command) -> anyhow::Result<Vec<String>> {
        match command {
            Command::RegisterUser(args) => register::run(self, args).await,
            Command::SetPassword(args) => password::run(self, args).await,
            Command::LockUser(args) => lock::lock(self, args).await,
            Command::UnlockUser(args) => lock::unlock(self, args).await,
            Command::AddEmail(args) => email::add(self, args).await,
            Command::VerifyEmail(args) => email::verify(self, args).await,
            Command::KillSessions(args) => sessions::kill(self, args).await,
            Command::IssueCompatibilityToken(args) => compat_token::run(self, args).await,
            Command::PromoteAdmin(args) => admin::promote(self, args).await,
            Command::DemoteAdmin(args) => admin::demote(self, args).await,
            Command::LinkUpstream(args) => upstream::link(self, args).await,
        }
    }

    /// The user's Matrix ID.
    pub(crate) fn mxid(&self, username: &str) -> String {
        format!("@{username}:{}", self.server_name)
    }

    /// A pooled connection.
    async fn conn(&self) -> anyhow::Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.ctx.db.pool().acquire().await?)
    }

    /// The user named `username`, or the error line every verb gives for an unknown user.
    pub(crate) async fn user(&self, username: &str) -> anyhow::Result<User> {
        let mut conn = self.conn().await?;
        find_user(&mut conn, username).await
    }

    /// The password manager, or an error when passwords are disabled.
    pub(crate) fn passwords(&self) -> anyhow::Result<&PasswordManager> {
        self.passwords
            .as_deref()
            .context("passwords are disabled in the configuration (passwords.enabled: false)")
    }

    /// Fails when the password is below `passwords.minimum_complexity`, unless
    /// `ignore_complexity`; `ignore_flag` names the flag that skips the check, for the error.
    pub(crate) fn check_complexity(
        &self,
        password: &str,
        ignore_complexity: bool,
        ignore_flag: &str,
    ) -> anyhow::Result<()> {
        if !ignore_complexity && !self.passwords()?.is_complex_enough(password) {
            anyhow::bail!(
                "the password is too weak (passwords.minimum_complexity); choose a longer, less \
                 guessable one or pass {ignore_flag}"
            );
        }
        Ok(())
    }

    /// Hashes with the current scheme: `(scheme version, hash)`.
    pub(crate) async fn hash_password(&self, password: &str) -> anyhow::Result<(u16, String)> {
        let mut rng = self.ctx.rng.fork();
        Ok(self.passwords()?.hash(&mut rng, password).await?)
    }

    /// Runs the jobs just queued (in order) and says in one line what happened in the
    /// homeserver; `done` is the line when everything worked.
    pub(crate) async fn run_jobs(&self, ids: &[Ulid], done: &str) -> anyhow::Result<String> {
        let mut steps = Vec::new();
        for id in ids {
            let report = jobs::run_job_now(&self.ctx, *id)
                .await
                .context("cannot run the queued job")?;
            let failed = !report.all_completed();
            steps.extend(report.steps);
            if failed {
                break;
            }
        }
        Ok(describe_jobs(&RunReport { steps }, done))
    }
}

/// The line for the jobs' outcome.
fn describe_jobs(report: &RunReport, done: &str) -> String {
    match report.first_failure() {
        None => done.to_owned(),
        Some((queue, Outcome::Retrying { reason, .. })) => format!(
            "The homeserver was not updated ({reason}); the {queue} job stays queued and \
             `mas-cli server` will retry it."
        ),
        Some((queue, Outcome::GaveUp { reason })) => {
            format!("The homeserver was not updated: the {queue} job failed ({reason}).")
        }
        Some((queue, Outcome::NotClaimed)) => {
            format!("The running server's job worker took over the {queue} job.")
        }
        Some((_, Outcome::Completed { .. })) => done.to_owned(),
    }
}

/// The user named `username`, or "no user named …".
pub(crate) async fn find_user(conn: &mut AnyConnection, username: &str) -> anyhow::Result<User> {
    users::find_user_by_username(conn, username)
        .await?
        .with_context(|| format!("no user named {username:?}"))
}

/// Queues `job` and returns its id (to run it right after the commit).
pub(crate) async fn queue(
    manage: &Manage,
    conn: &mut AnyConnection,
    job: &Job,
) -> anyhow::Result<Ulid> {
    let mut rng = manage.ctx.rng.fork();
    let queued = storage::jobs::enqueue_job(
        conn,
        manage.ctx.clock.as_ref(),
        &mut rng,
        job.queue_name(),
        &job.payload(),
    )
    .await?;
    Ok(queued.id)
}

/// Checks a new username (docs/protocol.md#usernames): `^[a-z0-9.=_/+-]+$`, not only digits, and
/// the full MXID at most 255 characters.
pub(crate) fn validate_username(username: &str, server_name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '=' | '_' | '/' | '+' | '-');
    if username.is_empty() {
        anyhow::bail!("the username is empty");
    }
    if !username.chars().all(allowed) {
        anyhow::bail!(
            "invalid username {username:?}: use only lower-case letters, digits and . = _ / + -"
        );
    }
    if username.chars().all(|c| c.is_ascii_digit()) {
        anyhow::bail!("invalid username {username:?}: it cannot be only digits");
    }
    // `@` + username + `:` + server name.
    let mxid_len = username.len() + server_name.len() + 2;
    if mxid_len > 255 {
        anyhow::bail!(
            "invalid username: the Matrix ID would be {mxid_len} characters long (at most 255)"
        );
    }
    Ok(())
}

/// A plausible email address: something@something, no spaces or control characters.
pub(crate) fn validate_email(email: &str) -> anyhow::Result<()> {
    let plausible = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if plausible {
        Ok(())
    } else {
        anyhow::bail!("invalid email address {email:?}")
    }
}
