//! Writing the clients declared in the config (`clients`) into the database at start: created,
//! or replaced under the same `client_id`, their secrets encrypted at rest. Clients removed from
//! the file stay in the database (upstream MAS only deletes them with `config sync --prune`).

use super::{Database, StorageError, clients};
use crate::clock::Clock;
use crate::config::{ClientConfig, ClientConfigError};
use crate::crypto::Encrypter;
use crate::rng::RngSource;

/// Why syncing the static clients failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A client's configuration is unusable (`config check` reports it first).
    #[error("clients[{index}]: {source}")]
    Config {
        /// Its position in `clients`.
        index: usize,
        /// What is wrong.
        #[source]
        source: ClientConfigError,
    },
    /// The database failed.
    #[error("storing the static clients failed")]
    Storage(#[from] StorageError),
}

/// Writes every static client into the database (created or replaced under its id), its
/// secret encrypted with `encrypter`. Returns how many were written.
#[tracing::instrument(name = "db.oauth2_clients.sync_static", skip_all, err)]
pub async fn sync_static_clients(
    db: &Database,
    clock: &dyn Clock,
    rng: &RngSource,
    encrypter: &Encrypter,
    clients: &[ClientConfig],
) -> Result<usize, SyncError> {
    let mut rng = rng.fork();
    let mut prepared = Vec::with_capacity(clients.len());
    for (index, client) in clients.iter().enumerate() {
        let config_error = |source| SyncError::Config { index, source };
        let id = client.id().map_err(config_error)?;
        let secret = client.load_secret().map_err(config_error)?;
        let metadata = client.metadata().map_err(config_error)?;
        let encrypted = secret.map(|secret| encrypter.encrypt(&mut rng, secret.as_bytes()));
        prepared.push((id, encrypted, metadata));
    }
    let mut tx = db.begin_write().await?;
    for (id, encrypted, metadata) in prepared {
        clients::upsert_static_client(&mut tx, clock, id, encrypted, metadata).await?;
    }
    tx.commit().await.map_err(StorageError::from)?;
    tracing::info!(count = clients.len(), "static clients synced");
    Ok(clients.len())
}

#[cfg(test)]
mod tests {
    use ulid::Ulid;

    use super::*;
    use crate::clock::MockClock;
    use crate::config::EncryptionKey;
    use crate::storage::testing::test_on_both_backends;

    const ID: &str = "01J00000000000000000SYNAPS";

    fn client(method: &str, secret: Option<&str>) -> ClientConfig {
        ClientConfig::sample(method, secret)
    }

    async fn sync_creates_then_replaces_static_clients(db: Database) {
        crate::storage::migrate(&db).await.unwrap();
        let clock = MockClock::default();
        let rng = RngSource::seeded(1);
        let encrypter = Encrypter::derive(&EncryptionKey([3; 32]), "secrets-at-rest");
        let mut config = client("client_secret_basic", Some("first"));
        let written = sync_static_clients(&db, &clock, &rng, &encrypter, &[config.clone()])
            .await
            .unwrap();
        assert_eq!(written, 1);
        config.client_secret = Some("second".to_owned());
        config.client_name = Some("Renamed".to_owned());
        sync_static_clients(&db, &clock, &rng, &encrypter, &[config])
            .await
            .unwrap();

        let mut conn = db.pool().acquire().await.unwrap();
        let stored = clients::find_client(&mut conn, Ulid::from_string(ID).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(stored.is_static);
        assert_eq!(stored.metadata.client_name.as_deref(), Some("Renamed"));
        assert!(stored.metadata.grant_types.client_credentials);
        let secret = encrypter
            .decrypt(stored.encrypted_client_secret.as_deref().unwrap())
            .unwrap();
        assert_eq!(secret, b"second");
    }

    test_on_both_backends!(sync_creates_then_replaces_static_clients);
}
