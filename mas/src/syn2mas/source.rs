//! Reading Synapse's database: one consistent, read-only snapshot (PostgreSQL
//! `REPEATABLE READ READ ONLY`; SQLite opened with `mode=ro` inside one read transaction),
//! rows streamed in a fixed order, never a whole table in memory, never a write. The column
//! names are those of Synapse 1.163.2 (testdata/synapse_*.sql).

use futures_util::stream::BoxStream;
use sqlx::{AnyConnection, Connection as _, Executor as _};

/// Which engine Synapse runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceBackend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A read-only snapshot of Synapse's database.
pub struct SynapseReader {
    conn: AnyConnection,
    backend: SourceBackend,
}

/// A row of `users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SynapseUser {
    /// The full MXID.
    pub name: String,
    /// The bcrypt hash, if the user has a password.
    pub password_hash: Option<String>,
    /// Seconds since the epoch.
    pub creation_ts: Option<i64>,
    /// `admin` (0/1).
    pub admin: i64,
    /// `is_guest` (0/1).
    pub is_guest: i64,
    /// The application service that owns the user.
    pub appservice_id: Option<String>,
    /// `deactivated` (0/1).
    pub deactivated: i64,
    /// `locked` (0/1).
    pub locked: i64,
}

/// A row of `user_threepids`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SynapseThreepid {
    /// The full MXID.
    pub user_id: String,
    /// `email` or `msisdn`.
    pub medium: String,
    /// The address.
    pub address: String,
    /// Milliseconds.
    pub validated_at: i64,
    /// Milliseconds.
    pub added_at: i64,
}

/// A row of `user_external_ids`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SynapseExternalId {
    /// The full MXID.
    pub user_id: String,
    /// `oidc`, `oidc-<idp_id>`, `saml`, `cas`, `oauth-delegated`…
    pub auth_provider: String,
    /// The provider's subject.
    pub external_id: String,
}

/// A row of `devices` that is not hidden, with the earliest `last_validated` of its tokens.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SynapseDevice {
    /// The full MXID.
    pub user_id: String,
    /// The device id.
    pub device_id: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Milliseconds.
    pub last_seen: Option<i64>,
    /// The last IP address (may be `-` or garbage).
    pub ip: Option<String>,
    /// The last user agent.
    pub user_agent: Option<String>,
    /// Milliseconds: the earliest validation of one of its access tokens.
    pub first_validated: Option<i64>,
}

/// A row of `access_tokens`, with its refresh token when it has one.
#[derive(Clone, sqlx::FromRow)]
pub struct SynapseAccessToken {
    /// The full MXID.
    pub user_id: String,
    /// The device, if any.
    pub device_id: Option<String>,
    /// The token text (secret: never printed).
    pub token: String,
    /// Milliseconds.
    pub valid_until_ms: Option<i64>,
    /// Set on tokens an admin made to act as another user.
    pub puppets_user_id: Option<String>,
    /// Milliseconds.
    pub last_validated: Option<i64>,
    /// The refresh token's text (secret).
    pub refresh_token: Option<String>,
    /// 1 when a newer pair replaced this one and was used already.
    pub superseded: i64,
}

impl std::fmt::Debug for SynapseAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynapseAccessToken")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

async fn count(conn: &mut AnyConnection, sql: &'static str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sql).fetch_one(conn).await
}

/// Counts the checks need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Rows of `users`.
    pub users: i64,
    /// Guests.
    pub guests: i64,
    /// Non-email 3PIDs.
    pub non_email_threepids: i64,
    /// Users whose only 3PIDs are not emails.
    pub users_with_only_phone: i64,
    /// `(auth_provider, count)` of `user_external_ids`, ordered.
    pub external_providers: Vec<(String, i64)>,
}

const USERS: &str = "SELECT name, password_hash, creation_ts, CAST(admin AS INTEGER) AS admin, \
     CAST(is_guest AS INTEGER) AS is_guest, appservice_id, \
     CAST(deactivated AS INTEGER) AS deactivated, CAST(locked AS INTEGER) AS locked \
     FROM users WHERE name IS NOT NULL ORDER BY name";

const THREEPIDS: &str = "SELECT user_id, medium, address, validated_at, added_at \
     FROM user_threepids ORDER BY user_id, medium, address";

const EXTERNAL_IDS: &str = "SELECT user_id, auth_provider, external_id \
     FROM user_external_ids ORDER BY user_id, auth_provider, external_id";

const DEVICES: &str = "SELECT d.user_id, d.device_id, d.display_name, d.last_seen, d.ip, \
     d.user_agent, (SELECT MIN(a.last_validated) FROM access_tokens a \
     WHERE a.user_id = d.user_id AND a.device_id = d.device_id) AS first_validated \
     FROM devices d WHERE COALESCE(CAST(d.hidden AS INTEGER), 0) = 0 \
     ORDER BY d.user_id, d.device_id";

const ACCESS_TOKENS: &str = "SELECT a.user_id, a.device_id, a.token, a.valid_until_ms, \
     a.puppets_user_id, a.last_validated, r.token AS refresh_token, \
     CASE WHEN r.next_token_id IS NOT NULL AND EXISTS (SELECT 1 FROM access_tokens n \
     WHERE n.refresh_token_id = r.next_token_id AND n.used) THEN 1 ELSE 0 END AS superseded \
     FROM access_tokens a LEFT JOIN refresh_tokens r ON r.id = a.refresh_token_id \
     ORDER BY a.id";

impl SynapseReader {
    /// Connects read-only and starts the snapshot every later read sees.
    pub async fn open(uri: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if uri.starts_with("sqlite:") {
            let separator = if uri.contains('?') { '&' } else { '?' };
            (SourceBackend::Sqlite, format!("{uri}{separator}mode=ro"))
        } else {
            (SourceBackend::Postgres, uri.to_owned())
        };
        let mut conn = AnyConnection::connect(&url).await?;
        let begin = match backend {
            SourceBackend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            SourceBackend::Sqlite => "BEGIN",
        };
        (&mut conn).execute(begin).await?;
        // The snapshot starts with the first read (SQLite's deferred transaction, PostgreSQL's
        // first statement); take it now.
        sqlx::query("SELECT COUNT(*) FROM users")
            .execute(&mut conn)
            .await?;
        Ok(Self { conn, backend })
    }

    /// Which engine this is.
    pub fn backend(&self) -> SourceBackend {
        self.backend
    }

    /// `users`, ordered by name.
    pub fn users(&mut self) -> BoxStream<'_, Result<SynapseUser, sqlx::Error>> {
        sqlx::query_as(USERS).fetch(&mut self.conn)
    }

    /// `user_threepids`, ordered by user.
    pub fn threepids(&mut self) -> BoxStream<'_, Result<SynapseThreepid, sqlx::Error>> {
        sqlx::query_as(THREEPIDS).fetch(&mut self.conn)
    }

    /// `user_external_ids`, ordered by user.
    pub fn external_ids(&mut self) -> BoxStream<'_, Result<SynapseExternalId, sqlx::Error>> {
        sqlx::query_as(EXTERNAL_IDS).fetch(&mut self.conn)
    }

    /// `devices` that are not hidden, ordered by user and device.
    pub fn devices(&mut self) -> BoxStream<'_, Result<SynapseDevice, sqlx::Error>> {
        sqlx::query_as(DEVICES).fetch(&mut self.conn)
    }

    /// `access_tokens` with their refresh tokens, in creation order.
    pub fn access_tokens(&mut self) -> BoxStream<'_, Result<SynapseAccessToken, sqlx::Error>> {
        sqlx::query_as(ACCESS_TOKENS).fetch(&mut self.conn)
    }

    /// The counts the checks need.
    pub async fn stats(&mut self) -> Result<SourceStats, sqlx::Error> {
        let users = count(&mut self.conn, "SELECT COUNT(*) FROM users").await?;
        let guests = count(
            &mut self.conn,
            "SELECT COUNT(*) FROM users WHERE is_guest <> 0",
        )
        .await?;
        let non_email_threepids = count(
            &mut self.conn,
            "SELECT COUNT(*) FROM user_threepids WHERE medium <> 'email'",
        )
        .await?;
        let users_with_only_phone = count(
            &mut self.conn,
            "SELECT COUNT(DISTINCT t.user_id) FROM user_threepids t WHERE t.medium <> 'email' \
             AND NOT EXISTS (SELECT 1 FROM user_threepids e \
             WHERE e.user_id = t.user_id AND e.medium = 'email')",
        )
        .await?;
        let external_providers = sqlx::query_as(
            "SELECT auth_provider, COUNT(*) FROM user_external_ids \
             GROUP BY auth_provider ORDER BY auth_provider",
        )
        .fetch_all(&mut self.conn)
        .await?;
        Ok(SourceStats {
            users,
            guests,
            non_email_threepids,
            users_with_only_phone,
            external_providers,
        })
    }

    /// The connection, to prove it refuses writes.
    #[cfg(test)]
    pub(crate) fn connection_for_tests(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// Ends the snapshot (a rollback: nothing was written) and disconnects.
    pub async fn close(mut self) -> Result<(), sqlx::Error> {
        (&mut self.conn).execute("ROLLBACK").await?;
        self.conn.close().await
    }
}
