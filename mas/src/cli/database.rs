//! `mas-cli database migrate`.

use std::process::ExitCode;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use clap::Subcommand;

use crate::storage::{self, Database};

/// `database` verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (creating the PostgreSQL schema if needed), then exit.
    Migrate,
}

pub(super) async fn run(command: Command, files: &[Utf8PathBuf]) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate => {
            let config = super::load_valid(files, Some("database."))?;
            let db = Database::connect(&config.database).await?;
            let applied = storage::migrate(&db)
                .await
                .context("cannot migrate the database")?;
            tracing::info!(applied = applied.len(), "database is up to date");
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
