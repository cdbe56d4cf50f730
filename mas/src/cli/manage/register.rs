//! `manage register-user USERNAME [--password P | --password-file F] [--admin]
//! [--email E]... [--display-name N] [--yes] [--ignore-password-complexity]`.

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use camino::Utf8PathBuf;
use ulid::Ulid;

use super::{Manage, queue, validate_email, validate_username};
use crate::jobs::Job;
use crate::storage::{StorageError, emails, passwords, users};

/// Arguments of `register-user`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Matrix localpart (`alice` for `@alice:example.com`).
    pub username: String,
    /// The password (visible in the process list; prefer --password-file).
    #[arg(short, long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// A file holding the password (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<Utf8PathBuf>,
    /// Allow the user to request Synapse admin rights (`urn:synapse:admin:*`).
    #[arg(short, long)]
    pub admin: bool,
    /// An email address, stored as verified (repeatable).
    #[arg(short, long = "email", value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// The profile display name set in the homeserver.
    #[arg(short, long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Accept a password below `passwords.minimum_complexity`.
    #[arg(long)]
    pub ignore_password_complexity: bool,
}

pub(super) async fn run(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    let password = check_args(manage, &args)?;
    check_username_is_free(manage, &args.username).await?;

    let mxid = manage.mxid(&args.username);
    let summary = summary(&mxid, password.is_some(), &args);
    confirm(manage, &args, password.is_some(), &summary)?;

    let hashed = match &password {
        Some(password) => Some(manage.hash_password(password).await?),
        None => None,
    };
    let job = create(manage, &args, hashed.as_ref()).await?;

    let done = manage
        .run_jobs(&[job], &format!("Provisioned {mxid} in the homeserver."))
        .await?;
    Ok(vec![format!("Created user {summary}."), done])
}

/// Checks the arguments that need no database (username, emails, display name, password
/// complexity) and reads the password, if one was given.
fn check_args(manage: &Manage, args: &Args) -> anyhow::Result<Option<String>> {
    validate_username(&args.username, &manage.server_name)?;
    let password = read_password(args)?;
    for email in &args.emails {
        validate_email(email)?;
    }
    if let Some(name) = &args.display_name
        && name.trim().is_empty()
    {
        anyhow::bail!("the display name is empty");
    }
    if let Some(password) = &password {
        manage.check_complexity(
            password,
            args.ignore_password_complexity,
            "--ignore-password-complexity",
        )?;
    }
    Ok(password)
}

/// Refuses a username MAS or the homeserver already has.
async fn check_username_is_free(manage: &Manage, username: &str) -> anyhow::Result<()> {
    let mut conn = manage.conn().await?;
    if users::find_user_by_username(&mut conn, username)
        .await?
        .is_some()
    {
        anyhow::bail!("the username {username:?} is already taken");
    }
    drop(conn);
    // Synapse knows users MAS does not (an appservice's namespace, older accounts). When it
    // cannot be reached, the provision job finds out later.
    match manage.ctx.homeserver.is_localpart_available(username).await {
        Ok(true) => {}
        Ok(false) => {
            anyhow::bail!("the username {username:?} is not available on the homeserver")
        }
        Err(error) => tracing::info!(error = %error, "availability not checked"),
    }
    Ok(())
}

/// Stores the user, its password (`(version, hash)`) and emails, and queues its provisioning,
/// in one transaction; the job's id.
async fn create(
    manage: &Manage,
    args: &Args,
    hashed: Option<&(u16, String)>,
) -> anyhow::Result<Ulid> {
    let username = args.username.as_str();
    let clock = manage.ctx.clock.as_ref();
    let mut rng = manage.ctx.rng.fork();
    let mut tx = manage.ctx.db.begin_write().await?;
    let user = match users::add_user(&mut tx, clock, &mut rng, username).await {
        Err(StorageError::UsernameTaken) => {
            anyhow::bail!("the username {username:?} is already taken")
        }
        result => result?,
    };
    if args.admin {
        users::set_can_request_admin(&mut tx, user.id, true).await?;
    }
    if let Some((version, hash)) = hashed {
        passwords::add_password(&mut tx, clock, &mut rng, user.id, hash, *version, None).await?;
    }
    for email in &args.emails {
        match emails::add_email(&mut tx, clock, &mut rng, user.id, email, true).await {
            Err(StorageError::EmailAlreadyAdded) => {
                anyhow::bail!("the email address {email:?} is given twice")
            }
            result => result?,
        };
    }
    let job = match &args.display_name {
        Some(display_name) => Job::ProvisionUserWithDisplayName {
            user_id: user.id,
            display_name: display_name.clone(),
        },
        None => Job::ProvisionUser { user_id: user.id },
    };
    let job = queue(manage, &mut tx, &job).await?;
    tx.commit().await.context("cannot save the user")?;
    Ok(job)
}

/// The password from `--password` or `--password-file`, if any.
fn read_password(args: &Args) -> anyhow::Result<Option<String>> {
    match (&args.password, &args.password_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("give the password with --password or --password-file, not both")
        }
        (Some(password), None) => {
            if password.is_empty() {
                anyhow::bail!("the password is empty");
            }
            Ok(Some(password.clone()))
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {file}"))?;
            let password = text
                .strip_suffix('\n')
                .map(|line| line.strip_suffix('\r').unwrap_or(line))
                .unwrap_or(&text);
            if password.is_empty() {
                anyhow::bail!("the password file {file} is empty");
            }
            Ok(Some(password.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// `alice (@alice:example.com), admin, with a password, email alice@example.com`.
fn summary(mxid: &str, has_password: bool, args: &Args) -> String {
    let mut parts = vec![format!("{} ({mxid})", args.username)];
    if args.admin {
        parts.push("admin".to_owned());
    }
    parts.push(if has_password {
        "with a password".to_owned()
    } else {
        "without a password".to_owned()
    });
    if let Some(name) = &args.display_name {
        parts.push(format!("display name {name:?}"));
    }
    if !args.emails.is_empty() {
        let noun = if args.emails.len() == 1 {
            "email"
        } else {
            "emails"
        };
        parts.push(format!("{noun} {}", args.emails.join(", ")));
    }
    parts.join(", ")
}

/// `--yes`, or a "yes" from the terminal; without a terminal, confirmed only if everything
/// (the password too) was given on the command line, so a script never hangs on a question.
fn confirm(manage: &Manage, args: &Args, has_password: bool, summary: &str) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    if !manage.interactive {
        if has_password {
            return Ok(());
        }
        anyhow::bail!(
            "no password given and no terminal to confirm; pass --password or --password-file, \
             or --yes to create the user without a password"
        );
    }
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "Create user {summary}? [y/N] ")?;
    stdout.flush()?;
    drop(stdout);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed; nothing was changed")
    }
}
