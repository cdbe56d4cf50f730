//! A Synapse database for tests: Synapse 1.163.2's six tables (testdata/) on the same engine
//! as the MAS test database (SQLite in a temporary file, PostgreSQL in a database of its own),
//! filled with the given SQL.

use sqlx::{AnyConnection, Connection as _, Executor as _};

use crate::config::DatabaseBackend;
use crate::storage::Database;

const SQLITE_SCHEMA: &str = include_str!("testdata/synapse_sqlite.sql");
const POSTGRES_SCHEMA: &str = include_str!("testdata/synapse_postgres.sql");

/// A Synapse database; [`SynapseFixture::drop_database`] removes a PostgreSQL one.
pub(crate) struct SynapseFixture {
    /// Its URI, as `--synapse-database-uri` takes it.
    pub(crate) uri: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl SynapseFixture {
    /// A Synapse database on the engine of `mas`, with `rows` (SQL) inserted.
    pub(crate) async fn new(mas: &Database, rows: &str) -> Self {
        sqlx::any::install_default_drivers();
        let fixture = match mas.backend() {
            DatabaseBackend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("homeserver.db");
                let uri = format!("sqlite://{}", path.display());
                let mut conn = AnyConnection::connect(&format!("{uri}?mode=rwc"))
                    .await
                    .unwrap();
                (&mut conn).execute(SQLITE_SCHEMA).await.unwrap();
                conn.close().await.unwrap();
                Self {
                    uri,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            DatabaseBackend::Postgres => {
                let admin = std::env::var("DATABASE_URL").unwrap();
                let name = format!("synapse_test_{}", rand::random::<u64>());
                let mut conn = AnyConnection::connect(&admin).await.unwrap();
                (&mut conn)
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                let uri = url.to_string();
                let mut conn = AnyConnection::connect(&uri).await.unwrap();
                (&mut conn).execute(POSTGRES_SCHEMA).await.unwrap();
                conn.close().await.unwrap();
                Self {
                    uri,
                    _dir: None,
                    postgres: Some((admin, name)),
                }
            }
        };
        fixture.execute(rows).await;
        fixture
    }

    /// Runs SQL on it (writable).
    pub(crate) async fn execute(&self, sql: &str) {
        if sql.is_empty() {
            return;
        }
        let uri = if self.postgres.is_some() {
            self.uri.clone()
        } else {
            format!("{}?mode=rw", self.uri)
        };
        let mut conn = AnyConnection::connect(&uri).await.unwrap();
        (&mut conn).execute(sql).await.unwrap();
        conn.close().await.unwrap();
    }

    /// Drops the PostgreSQL database (the SQLite file goes with the value).
    pub(crate) async fn drop_database(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = AnyConnection::connect(admin).await.unwrap();
            (&mut conn)
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// A real Synapse hash (Python `bcrypt.hashpw`, cost 4) of the NFKC form of
/// [`PASSWORD`] with [`PEPPER`] appended, as Synapse computes it.
pub(crate) const HASH: &str = "$2b$04$Csu3JMqnl78iD2FVNUON/eYc0Yg82fp6xmP97TobFEEBAxmL9hok6";
/// The password behind [`HASH`], before NFKC (a full-width `Ｐ` and the `ﬁ` ligature).
pub(crate) const PASSWORD: &str = "Ｐässwörd ﬁne";
/// Synapse's `password_config.pepper` for [`HASH`].
pub(crate) const PEPPER: &str = "pepper!";
/// The MAS provider the tests map `oidc-cloudron` to.
pub(crate) const PROVIDER_ID: &str = "01J00000000000000000PR0V1D";

/// A Synapse with every case the mapping distinguishes, on server `example.com`.
pub(crate) fn population() -> String {
    format!(
        "INSERT INTO users (name, password_hash, creation_ts, admin, is_guest, appservice_id, \
         deactivated, locked) VALUES \
         ('@alice:example.com', '{HASH}', 1700000000, 1, 0, NULL, 0, FALSE), \
         ('@bob:example.com', NULL, 1700000001, 0, 0, NULL, 0, TRUE), \
         ('@carol:example.com', '{HASH}', 1700000002, 0, 0, NULL, 1, FALSE), \
         ('@guest1:example.com', NULL, 1700000003, 0, 1, NULL, 0, FALSE), \
         ('@bridge_x:example.com', NULL, 1700000004, 0, 0, 'bridge', 0, FALSE);
         INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) VALUES \
         ('@alice:example.com', 'email', 'Alice@Example.com', 1700000000500, 1700000000400), \
         ('@alice:example.com', 'msisdn', '441234567890', 1, 1), \
         ('@bob:example.com', 'msisdn', '449876543210', 1, 1), \
         ('@bridge_x:example.com', 'email', 'bridge@example.com', 1, 1);
         INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES \
         ('oidc-cloudron', 'sub-alice', '@alice:example.com');
         INSERT INTO devices (user_id, device_id, display_name, last_seen, ip, user_agent, \
         hidden) VALUES \
         ('@alice:example.com', 'DEV1', 'Phone', 1700000900000, '192.0.2.7', 'Element/1.0', \
         FALSE), \
         ('@alice:example.com', 'DEV2', NULL, NULL, '-', NULL, TRUE), \
         ('@carol:example.com', 'DEVC', NULL, NULL, NULL, NULL, FALSE), \
         ('@guest1:example.com', 'DEVG', NULL, NULL, NULL, NULL, FALSE);
         INSERT INTO refresh_tokens (id, user_id, device_id, token, next_token_id) VALUES \
         (11, '@alice:example.com', 'DEV1', 'syr_refresh_new', NULL), \
         (10, '@alice:example.com', 'DEV1', 'syr_refresh_old', 11);
         INSERT INTO access_tokens (id, user_id, device_id, token, valid_until_ms, \
         puppets_user_id, last_validated, refresh_token_id, used) VALUES \
         (1, '@alice:example.com', 'DEV1', 'syt_YWxpY2U_plain_token', NULL, NULL, \
         1700000100000, NULL, NULL), \
         (2, '@alice:example.com', 'DEV1', 'syt_puppet', NULL, '@admin:example.com', NULL, \
         NULL, NULL), \
         (3, '@alice:example.com', NULL, 'syt_no_device', NULL, NULL, NULL, NULL, NULL), \
         (4, '@carol:example.com', 'DEVC', 'syt_carol', NULL, NULL, NULL, NULL, NULL), \
         (5, '@alice:example.com', 'DEV2', 'syt_hidden', NULL, NULL, NULL, NULL, NULL), \
         (6, '@alice:example.com', 'DEV1', 'syt_old_pair', 1700000200000, NULL, \
         1700000150000, 10, TRUE), \
         (7, '@alice:example.com', 'DEV1', 'syt_new_pair', 1700000300000, NULL, \
         1700000250000, 11, TRUE);"
    )
}

/// The MAS config the tests use: the documented schemes for imported passwords and the
/// provider mapped to `oidc-cloudron`.
pub(crate) fn mas_config() -> crate::config::RootConfig {
    crate::config::from_str(&format!(
        "matrix: {{homeserver: example.com, secret: s, endpoint: 'http://127.0.0.1:8008/'}}\n\
         passwords:\n  schemes:\n    - {{version: 1, algorithm: bcrypt, unicode_normalization: \
         true, secret: '{PEPPER}'}}\n    - {{version: 2, algorithm: argon2id}}\n\
         upstream_oauth2:\n  providers:\n    - {{id: {PROVIDER_ID}, synapse_idp_id: \
         oidc-cloudron, issuer: 'https://id.example.com', client_id: c, client_secret: s}}\n"
    ))
    .unwrap()
}

/// The Synapse config matching [`population`].
pub(crate) fn synapse_config() -> super::SynapseConfig {
    super::SynapseConfig::parse(&format!(
        "server_name: example.com\npassword_config: {{pepper: '{PEPPER}'}}\n\
         oidc_providers: [{{idp_id: cloudron}}]\n"
    ))
    .unwrap()
}
