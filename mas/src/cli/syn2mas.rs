//! `mas-cli syn2mas check|migrate` (docs/protocol.md#syn2mas): import an existing Synapse's
//! users, passwords, emails, upstream links and sessions into an empty MAS database.
//!
//! Exit status: 0 fine; 10 at least one error (nothing written); 11 (`check` only) warnings
//! but no error. `migrate` refuses on errors and goes ahead with warnings. The report and the
//! summary go to standard output, progress to standard error; no token, hash or secret is
//! ever printed.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::RootConfig;
use crate::rng::RngSource;
use crate::storage::{self, Database};
use crate::syn2mas::{
    self, Problem, Severity, Summary, Syn2masError, SynapseConfig, SynapseReader, Target, checks,
    import, progress,
};

/// Exit status when a check found an error.
const EXIT_ERRORS: u8 = 10;
/// Exit status of `check` when it found warnings only.
const EXIT_WARNINGS: u8 = 11;

/// `syn2mas` verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check whether this Synapse can be imported (exit 10: errors, 11: warnings only).
    Check(Source),
    /// Import Synapse's users and sessions into the empty MAS database.
    Migrate {
        /// Where to read from.
        #[command(flatten)]
        source: Source,
        /// Do everything, then roll back: prints what would be imported.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Synapse's configuration and database.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// Synapse's homeserver.yaml; repeat to merge several, as Synapse does.
    #[arg(long = "synapse-config", required = true, value_name = "FILE")]
    pub synapse_config: Vec<Utf8PathBuf>,
    /// Synapse's database, instead of the config's `database` section:
    /// `postgres://user:pass@host:port/db[?options=-csearch_path%3Dschema]`,
    /// `sqlite:///abs/path.db` or a plain path.
    #[arg(long, value_name = "URI")]
    pub synapse_database_uri: Option<String>,
}

pub(super) async fn run(command: Command, files: &[Utf8PathBuf]) -> anyhow::Result<ExitCode> {
    let mas = super::load_valid(files, None)?;
    let db = Database::connect(&mas.database).await?;
    storage::ensure_up_to_date(&db).await?;
    let (code, output) = match command {
        Command::Check(source) => check(&mas, &db, &source).await?,
        Command::Migrate { source, dry_run } => {
            let mut progress = progress::for_stderr();
            migrate(&mas, &db, &source, dry_run, progress.as_mut()).await?
        }
    };
    db.close().await;
    super::print(&output)?;
    Ok(ExitCode::from(code))
}

/// `check`: the report and the exit status.
pub(crate) async fn check(
    mas: &RootConfig,
    db: &Database,
    source: &Source,
) -> anyhow::Result<(u8, String)> {
    let (synapse, mut reader) = open(source).await?;
    let problems = syn2mas::check(mas, &synapse, &mut reader, db).await;
    reader
        .close()
        .await
        .context("cannot close Synapse's database")?;
    let problems = problems?;
    let code = if has_errors(&problems) {
        EXIT_ERRORS
    } else if problems.is_empty() {
        0
    } else {
        EXIT_WARNINGS
    };
    let mut output = report(&problems);
    if problems.is_empty() {
        output.push_str("syn2mas: no problem found\n");
    }
    Ok((code, output))
}

/// `migrate`: checks, refuses on errors, imports; the report, the summary, the status.
pub(crate) async fn migrate(
    mas: &RootConfig,
    db: &Database,
    source: &Source,
    dry_run: bool,
    progress: &mut dyn progress::Progress,
) -> anyhow::Result<(u8, String)> {
    let (synapse, mut reader) = open(source).await?;
    let problems = syn2mas::check(mas, &synapse, &mut reader, db).await?;
    let mut output = report(&problems);
    if has_errors(&problems) {
        reader
            .close()
            .await
            .context("cannot close Synapse's database")?;
        output.push_str("syn2mas: nothing was imported (fix the errors above)\n");
        return Ok((EXIT_ERRORS, output));
    }
    let providers = checks::provider_map(mas);
    let mut rng = RngSource::from_entropy().fork();
    let target = Target {
        db,
        clock: &SystemClock,
        rng: &mut rng,
        server_name: &synapse.server_name,
        providers: &providers,
        dry_run,
    };
    let outcome = import::import(&mut reader, target, progress).await;
    progress.finish();
    reader
        .close()
        .await
        .context("cannot close Synapse's database")?;
    match outcome {
        Ok(summary) => {
            output.push_str(&render_summary(&summary));
            Ok((0, output))
        }
        Err(error @ (Syn2masError::NotEmpty(_) | Syn2masError::UnknownProvider(_))) => {
            let _ = writeln!(output, "error: {error}");
            output.push_str("syn2mas: nothing was imported\n");
            Ok((EXIT_ERRORS, output))
        }
        Err(error) => Err(error).context("the import failed; nothing was imported"),
    }
}

async fn open(source: &Source) -> anyhow::Result<(SynapseConfig, SynapseReader)> {
    let synapse = SynapseConfig::load(&source.synapse_config)?;
    let uri = synapse.database_uri(source.synapse_database_uri.as_deref())?;
    let reader = SynapseReader::open(&uri)
        .await
        .context("cannot open Synapse's database read-only")?;
    Ok((synapse, reader))
}

fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

fn report(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{p}\n")).collect()
}

/// The summary: counts only, never a value.
fn render_summary(summary: &Summary) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "syn2mas: {}",
        if summary.dry_run {
            "dry run: this is what would be imported; nothing was kept"
        } else {
            "imported"
        }
    );
    for (name, count) in [
        ("users", summary.users),
        ("passwords", summary.passwords),
        ("emails", summary.emails),
        ("upstream links", summary.upstream_links),
        ("compat sessions", summary.compat_sessions),
        ("access tokens", summary.access_tokens),
        ("refresh tokens", summary.refresh_tokens),
    ] {
        let _ = writeln!(text, "  {name}: {count}");
    }
    if !summary.skipped.is_empty() {
        text.push_str("  skipped:\n");
        for (reason, count) in &summary.skipped {
            let _ = writeln!(text, "    {reason}: {count}");
        }
    }
    text
}

#[cfg(test)]
mod tests;
