//! syn2mas: importing an existing Synapse user base into an empty MAS database
//! (docs/protocol.md#syn2mas). Synapse's config ([`synapse_config`]) and database
//! ([`source`], read-only, one snapshot) are read; [`checks`] say what would be lost; the
//! [`import`] maps users, passwords, emails, upstream links, devices and tokens into MAS in
//! one transaction. The command line is `cli/syn2mas.rs`; this module prints nothing but
//! progress.

pub mod checks;
pub mod import;
pub mod progress;
pub mod source;
pub mod synapse_config;
mod writer;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use self::checks::{Problem, Severity};
pub use self::import::{Summary, Target};
pub use self::source::{SourceBackend, SourceStats, SynapseReader};
pub use self::synapse_config::{SynapseConfig, SynapseConfigError};

/// Why an import stopped (nothing was kept).
#[derive(Debug, thiserror::Error)]
pub enum Syn2masError {
    /// Reading Synapse's database failed.
    #[error("reading Synapse's database failed")]
    Source(#[source] sqlx::Error),
    /// Writing the MAS database failed.
    #[error("writing the MAS database failed")]
    Target(#[source] crate::storage::StorageError),
    /// The MAS database has rows already.
    #[error("the MAS database is not empty ({}); syn2mas only imports into an empty one", .0.join(", "))]
    NotEmpty(Vec<&'static str>),
    /// An external id names a provider no MAS provider maps.
    #[error("no MAS upstream provider has synapse_idp_id `{0}`")]
    UnknownProvider(String),
}

impl From<sqlx::Error> for Syn2masError {
    fn from(error: sqlx::Error) -> Self {
        Self::Target(crate::storage::StorageError::Query(error))
    }
}

/// Runs the checks on an open snapshot of Synapse and on the MAS database.
pub async fn check(
    mas: &crate::config::RootConfig,
    synapse: &SynapseConfig,
    reader: &mut SynapseReader,
    db: &crate::storage::Database,
) -> Result<Vec<Problem>, Syn2masError> {
    let stats = reader.stats().await.map_err(Syn2masError::Source)?;
    let mut conn = db.acquire().await.map_err(Syn2masError::Target)?;
    let not_empty = import::non_empty_tables(&mut conn).await?;
    Ok(checks::run(mas, synapse, &stats, &not_empty))
}
