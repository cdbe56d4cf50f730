//! `manage set-password USERNAME PASSWORD [--ignore-complexity]`.

use super::Manage;
use crate::storage::passwords;

/// Arguments of `set-password`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose password.
    pub username: String,
    /// The new password.
    pub password: String,
    /// Accept a password below `passwords.minimum_complexity`.
    #[arg(long)]
    pub ignore_complexity: bool,
}

pub(super) async fn run(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    if args.password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    manage.passwords()?;
    let user = manage.user(&args.username).await?;
    manage.check_complexity(
        &args.password,
        args.ignore_complexity,
        "--ignore-complexity",
    )?;
    let (version, hash) = manage.hash_password(&args.password).await?;
    let mut rng = manage.ctx.rng.fork();
    let mut conn = manage.conn().await?;
    passwords::add_password(
        &mut conn,
        manage.ctx.clock.as_ref(),
        &mut rng,
        user.id,
        &hash,
        version,
        None,
    )
    .await?;
    Ok(vec![format!(
        "Set the password of {} ({}).",
        user.username,
        manage.mxid(&user.username)
    )])
}
