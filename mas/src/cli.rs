//! The `mas-cli` command line, with upstream's verbs so its documentation and habits carry
//! over: `server`, `database migrate`, `config check|dump|generate`, `manage`, `doctor`,
//! `syn2mas check|migrate`.
//! Errors are `anyhow` here (and only here): they end as one line, `error: ...`, and exit
//! status 1.

mod config;
mod database;
mod doctor;
mod manage;
mod server;
mod syn2mas;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::{ArgAction, Parser, Subcommand};

use crate::config::RootConfig;
use crate::telemetry::{self, LogTarget};

/// The config file read when no `-c` is given, as upstream.
const DEFAULT_CONFIG: &str = "config.yaml";

/// `mas-cli`: the appliance's Matrix Authentication Service.
#[derive(Debug, Parser)]
#[command(name = "mas-cli", version, about)]
pub struct Options {
    /// Configuration file; repeat to deep-merge several, later ones winning
    /// (default: config.yaml).
    #[arg(short, long = "config", global = true, action = ArgAction::Append, value_name = "FILE")]
    pub config: Vec<Utf8PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP until SIGTERM or SIGINT; refuses to start with a pending migration.
    Server,
    /// Manage the database.
    Database {
        /// What to do with it.
        #[command(subcommand)]
        command: database::Command,
    },
    /// Check, print or generate configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: config::Command,
    },
    /// Administer users: register, passwords, locking, emails, sessions.
    Manage {
        /// What to do.
        #[command(subcommand)]
        command: manage::Command,
    },
    /// Check the configuration and mail; `--send-test-email ADDRESS` proves delivery.
    Doctor(doctor::DoctorArgs),
    /// Import an existing Synapse's users and sessions (`check`, then `migrate`).
    Syn2mas {
        /// What to do.
        #[command(subcommand)]
        command: syn2mas::Command,
    },
}

/// Entry point of the binary: parses arguments, sets up logging, runs the command and turns
/// an error into one line on standard error and exit status 1.
pub fn main() -> ExitCode {
    let options = Options::parse();
    match options.command {
        Command::Config { .. } => telemetry::init(LogTarget::Stderr),
        Command::Server | Command::Database { .. } => telemetry::init(LogTarget::Stdout),
        // Its output is its result; logs only when asked for with RUST_LOG.
        Command::Manage { .. } | Command::Doctor(_) | Command::Syn2mas { .. } => {
            telemetry::init_with_default(LogTarget::Stderr, "off");
        }
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(options)));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            #[expect(
                clippy::print_stderr,
                reason = "the one place errors reach the operator"
            )]
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let files = config_files(&options);
    match options.command {
        Command::Server => server::run(&files).await,
        Command::Database { command } => database::run(command, &files).await,
        Command::Config { command } => config::run(command, &files),
        Command::Manage { command } => manage::run(command, &files).await,
        Command::Doctor(args) => doctor::run(args, &files).await,
        Command::Syn2mas { command } => syn2mas::run(command, &files).await,
    }
}

fn config_files(options: &Options) -> Vec<Utf8PathBuf> {
    if options.config.is_empty() {
        vec![Utf8PathBuf::from(DEFAULT_CONFIG)]
    } else {
        options.config.clone()
    }
}

/// Loads and merges the files, without validating.
fn load(files: &[Utf8PathBuf]) -> anyhow::Result<RootConfig> {
    Ok(crate::config::load(files)?)
}

/// Loads the files and fails with every problem (restricted to keys under `scope`, when
/// given) on one line.
fn load_valid(files: &[Utf8PathBuf], scope: Option<&str>) -> anyhow::Result<RootConfig> {
    let config = load(files)?;
    let problems: Vec<String> = config
        .validate()
        .into_iter()
        .filter(|problem| scope.is_none_or(|scope| problem.path.starts_with(scope)))
        .map(|problem| problem.to_string())
        .collect();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration: {}", problems.join("; "));
    }
    Ok(config)
}

/// Writes `text` to standard output.
fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Options::command().debug_assert();
    }

    #[test]
    fn config_flag_repeats_before_or_after_the_verb() {
        let before = ["mas-cli", "-c", "a.yaml", "--config", "b.yaml", "server"];
        let after = ["mas-cli", "server", "-c", "a.yaml", "-c", "b.yaml"];
        for args in [&before, &after] {
            let options = Options::try_parse_from(args).unwrap();
            assert_eq!(config_files(&options), ["a.yaml", "b.yaml"]);
        }
    }

    #[test]
    fn config_defaults_to_config_yaml() {
        let options = Options::try_parse_from(["mas-cli", "database", "migrate"]).unwrap();
        assert_eq!(config_files(&options), [DEFAULT_CONFIG]);
    }
}
