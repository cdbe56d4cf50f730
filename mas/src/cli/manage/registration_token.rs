//! `manage issue-user-registration-token [--token T] [--usage-limit N] [--expires-in S]`,
//! `manage list-user-registration-tokens` and `manage revoke-user-registration-token TOKEN`:
//! the registration tokens people give when `account.password_registration_token_required` is
//! on (upstream MAS's verbs; docs/protocol.md#registration).

use crate::clock::format_unix_ms;
use crate::crypto::random;
use crate::model::RegistrationToken;
use crate::storage::{StorageError, registrations};

use super::Manage;

/// The length of a generated token: 16 alphanumerics (95 bits).
const GENERATED_LEN: usize = 16;

/// The longest token accepted, as Synapse's registration tokens.
const MAX_LEN: usize = 64;

/// Arguments of `issue-user-registration-token`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The token (1 to 64 of `A-Z a-z 0-9 . _ ~ -`); default: 16 random alphanumerics.
    #[arg(long)]
    pub token: Option<String>,
    /// How many accounts it may create (default: no limit).
    #[arg(long, value_name = "N")]
    pub usage_limit: Option<u64>,
    /// Seconds until it expires (default: never).
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u64>,
}

/// Arguments of `revoke-user-registration-token`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The token.
    pub token: String,
}

pub(super) async fn issue(manage: &Manage, args: IssueArgs) -> anyhow::Result<Vec<String>> {
    if let Some(token) = &args.token {
        check_token(token)?;
    }
    if args.usage_limit == Some(0) {
        anyhow::bail!("--usage-limit must be at least 1");
    }
    let expires_in_ms = match args.expires_in {
        Some(0) => anyhow::bail!("--expires-in must be at least 1 second"),
        Some(seconds) => Some(
            i64::try_from(seconds)
                .ok()
                .and_then(|seconds| seconds.checked_mul(1000))
                .ok_or_else(|| anyhow::anyhow!("--expires-in is too large"))?,
        ),
        None => None,
    };
    let mut rng = manage.ctx.rng.fork();
    let token = args
        .token
        .unwrap_or_else(|| random::alphanumeric(&mut rng, GENERATED_LEN));
    let clock = manage.ctx.clock.as_ref();
    let expires_at = expires_in_ms.map(|ms| clock.now_unix_ms().saturating_add(ms));
    let mut conn = manage.conn().await?;
    let issued = match registrations::add_registration_token(
        &mut conn,
        clock,
        &mut rng,
        &token,
        args.usage_limit,
        expires_at,
    )
    .await
    {
        Err(StorageError::RegistrationTokenExists) => {
            anyhow::bail!("--token: the registration token {token:?} exists already")
        }
        result => result?,
    };
    Ok(vec![
        format!(
            "Issued a registration token ({}, {}):",
            uses(&issued),
            expiry(&issued)
        ),
        issued.token,
    ])
}

pub(super) async fn list(manage: &Manage) -> anyhow::Result<Vec<String>> {
    let mut conn = manage.conn().await?;
    let tokens = registrations::list_registration_tokens(&mut conn).await?;
    if tokens.is_empty() {
        return Ok(vec!["No registration tokens.".to_owned()]);
    }
    let now = manage.ctx.clock.now_unix_ms();
    let rows: Vec<[String; 4]> = tokens
        .iter()
        .map(|token| {
            let uses = match token.usage_limit {
                Some(limit) => format!("{}/{limit}", token.times_used),
                None => format!("{}/unlimited", token.times_used),
            };
            let expires = token.expires_at.map_or("never".to_owned(), format_unix_ms);
            [
                token.token.clone(),
                uses,
                expires,
                token.state(now).as_str().to_owned(),
            ]
        })
        .collect();
    Ok(table(["TOKEN", "USES", "EXPIRES", "STATE"], &rows))
}

pub(super) async fn revoke(manage: &Manage, args: RevokeArgs) -> anyhow::Result<Vec<String>> {
    let mut conn = manage.conn().await?;
    let Some(token) =
        registrations::find_registration_token_by_token(&mut conn, &args.token).await?
    else {
        anyhow::bail!("no registration token {:?}", args.token);
    };
    if !registrations::revoke_registration_token(&mut conn, manage.ctx.clock.as_ref(), token.id)
        .await?
    {
        anyhow::bail!("the registration token {:?} is revoked already", args.token);
    }
    Ok(vec![format!(
        "Revoked the registration token {}.",
        token.token
    )])
}

/// Synapse's registration token alphabet (`[A-Za-z0-9._~-]{1,64}`), so a token works the same
/// in a URL, a form and a shell.
fn check_token(token: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    if token.is_empty() || token.len() > MAX_LEN || !token.chars().all(allowed) {
        anyhow::bail!("--token must be 1 to {MAX_LEN} of A-Z a-z 0-9 . _ ~ -");
    }
    Ok(())
}

/// `3 uses` / `1 use` / `unlimited uses`.
fn uses(token: &RegistrationToken) -> String {
    match token.usage_limit {
        Some(1) => "1 use".to_owned(),
        Some(limit) => format!("{limit} uses"),
        None => "unlimited uses".to_owned(),
    }
}

/// `expires 2026-01-02 03:04 UTC` / `never expires`.
fn expiry(token: &RegistrationToken) -> String {
    token.expires_at.map_or("never expires".to_owned(), |at| {
        format!("expires {}", format_unix_ms(at))
    })
}

/// Left-aligned columns separated by two spaces, the header first.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    std::iter::once(line(header))
        .chain(
            rows.iter()
                .map(|row| line(row.each_ref().map(String::as_str))),
        )
        .collect()
}
