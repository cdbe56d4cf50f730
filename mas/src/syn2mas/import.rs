//! The import itself (docs/protocol.md#syn2mas): Synapse's rows streamed in order, mapped and
//! written in batches into the MAS database in ONE transaction, committed at the end (or
//! rolled back for a dry run, or by any failure: all or nothing).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt as _;
use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::Syn2masError;
use super::progress::Progress;
use super::source::{SynapseAccessToken, SynapseDevice, SynapseReader, SynapseUser};
use super::writer::{Batch, Cell};
use crate::clock::Clock;
use crate::crypto::tokens::sha256_hex;
use crate::rng::new_ulid;
use crate::storage::Database;

/// What the import works with on the MAS side.
pub struct Target<'a> {
    /// The MAS database (must be empty).
    pub db: &'a Database,
    /// The clock ("now" for rows Synapse has no time for).
    pub clock: &'a dyn Clock,
    /// Randomness for the ULIDs.
    pub rng: &'a mut (dyn RngCore + Send),
    /// Synapse's `server_name`: MXIDs of other servers are skipped.
    pub server_name: &'a str,
    /// `synapse_idp_id` → MAS upstream provider id.
    pub providers: &'a HashMap<String, String>,
    /// Roll back at the end instead of committing.
    pub dry_run: bool,
}

/// What was imported (or would have been, in a dry run), and what was skipped and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Whether this was a dry run (nothing kept).
    pub dry_run: bool,
    /// `users` rows.
    pub users: u64,
    /// `user_passwords` rows.
    pub passwords: u64,
    /// `user_emails` rows.
    pub emails: u64,
    /// `upstream_oauth_links` rows.
    pub upstream_links: u64,
    /// `compat_sessions` rows.
    pub compat_sessions: u64,
    /// `compat_access_tokens` rows.
    pub access_tokens: u64,
    /// `compat_refresh_tokens` rows.
    pub refresh_tokens: u64,
    /// Skipped rows by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Summary {
    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// What the later steps need to know of an imported user.
struct UserInfo {
    id: Ulid,
    admin: bool,
    /// Deactivated users and guests get no sessions.
    sessions: bool,
}

/// The MAS tables whose rows mean "not empty".
const NON_EMPTY_TABLES: [&str; 4] = [
    "users",
    "compat_sessions",
    "oauth2_sessions",
    "upstream_oauth_links",
];

/// The tables of [`NON_EMPTY_TABLES`] that have rows.
pub async fn non_empty_tables(conn: &mut AnyConnection) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut found = Vec::new();
    for table in NON_EMPTY_TABLES {
        let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 1) AS t");
        let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
        if rows > 0 {
            found.push(table);
        }
    }
    Ok(found)
}

/// Runs the import. The caller has run the checks; this still refuses a non-empty MAS
/// database and an unmapped provider.
pub async fn import(
    reader: &mut SynapseReader,
    target: Target<'_>,
    progress: &mut dyn Progress,
) -> Result<Summary, Syn2masError> {
    let mut tx = target
        .db
        .begin_write()
        .await
        .map_err(Syn2masError::Target)?;
    let not_empty = non_empty_tables(&mut tx).await?;
    if !not_empty.is_empty() {
        return Err(Syn2masError::NotEmpty(not_empty));
    }
    let mut run = Run {
        conn: &mut tx,
        clock: target.clock,
        rng: target.rng,
        server_name: target.server_name,
        providers: target.providers,
        users: HashMap::new(),
        summary: Summary {
            dry_run: target.dry_run,
            ..Summary::default()
        },
        progress,
    };
    run.users(reader).await?;
    run.threepids(reader).await?;
    run.external_ids(reader).await?;
    let sessions = run.devices(reader).await?;
    run.tokens(reader, &sessions).await?;
    let summary = run.summary;
    if target.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(summary)
}

struct Run<'a> {
    conn: &'a mut AnyConnection,
    clock: &'a dyn Clock,
    rng: &'a mut (dyn RngCore + Send),
    server_name: &'a str,
    providers: &'a HashMap<String, String>,
    /// MXID → imported user; absent: skipped (appservice, other server).
    users: HashMap<String, UserInfo>,
    summary: Summary,
    progress: &'a mut dyn Progress,
}

impl Run<'_> {
    async fn users(&mut self, reader: &mut SynapseReader) -> Result<(), Syn2masError> {
        let mut users = Batch::new(
            "users",
            &[
                "user_id",
                "username",
                "created_at",
                "locked_at",
                "deactivated_at",
                "can_request_admin",
                "is_guest",
            ],
        );
        let mut passwords = Batch::new(
            "user_passwords",
            &[
                "user_password_id",
                "user_id",
                "hashed_password",
                "version",
                "created_at",
            ],
        );
        self.progress.phase("users");
        let mut rows = reader.users();
        while let Some(user) = rows.try_next().await.map_err(Syn2masError::Source)? {
            self.progress.advance();
            let Some(localpart) = localpart(&user.name, self.server_name) else {
                self.summary.skip("users of another server");
                continue;
            };
            if user.appservice_id.is_some() {
                self.summary.skip("application service users");
                continue;
            }
            let created_at = user.creation_ts.unwrap_or(0).saturating_mul(1000);
            let id = new_ulid(created_at, self.rng);
            let flag = |set: i64| (set != 0).then_some(created_at);
            users
                .push(self.conn, user_row(&user, id, localpart, created_at, flag))
                .await?;
            if let Some(hash) = user.password_hash.filter(|hash| !hash.is_empty()) {
                let password_id = new_ulid(created_at, self.rng);
                let row = vec![
                    password_id.to_string().into(),
                    id.to_string().into(),
                    hash.into(),
                    1_i64.into(),
                    created_at.into(),
                ];
                // A password row refers to its user: write the users first.
                if passwords.full_after_push() {
                    users.flush(self.conn).await?;
                }
                passwords.push(self.conn, row).await?;
            }
            let info = UserInfo {
                id,
                admin: user.admin != 0,
                sessions: user.deactivated == 0 && user.is_guest == 0,
            };
            self.users.insert(user.name, info);
        }
        drop(rows);
        users.flush(self.conn).await?;
        passwords.flush(self.conn).await?;
        self.summary.users = users.count();
        self.summary.passwords = passwords.count();
        Ok(())
    }

    async fn threepids(&mut self, reader: &mut SynapseReader) -> Result<(), Syn2masError> {
        let mut emails = Batch::new(
            "user_emails",
            &[
                "user_email_id",
                "user_id",
                "email",
                "email_normalized",
                "created_at",
                "confirmed_at",
            ],
        );
        self.progress.phase("emails");
        let mut rows = reader.threepids();
        // Rows come by user: addresses seen for the current user (Synapse compares them
        // case-sensitively, MAS per user case-insensitively).
        let mut current = (String::new(), HashSet::new());
        while let Some(threepid) = rows.try_next().await.map_err(Syn2masError::Source)? {
            self.progress.advance();
            let Some(user) = self.users.get(&threepid.user_id) else {
                self.summary.skip("3PIDs of users not imported");
                continue;
            };
            if threepid.medium != "email" {
                self.summary.skip("non-email 3PIDs (phone numbers)");
                continue;
            }
            if current.0 != threepid.user_id {
                current = (threepid.user_id.clone(), HashSet::new());
            }
            let normalized = threepid.address.to_lowercase();
            if !current.1.insert(normalized.clone()) {
                self.summary.skip("email addresses differing only in case");
                continue;
            }
            let row = vec![
                new_ulid(threepid.added_at, self.rng).to_string().into(),
                user.id.to_string().into(),
                threepid.address.into(),
                normalized.into(),
                threepid.added_at.into(),
                threepid.validated_at.into(),
            ];
            emails.push(self.conn, row).await?;
        }
        drop(rows);
        emails.flush(self.conn).await?;
        self.summary.emails = emails.count();
        Ok(())
    }

    async fn external_ids(&mut self, reader: &mut SynapseReader) -> Result<(), Syn2masError> {
        let mut links = Batch::new(
            "upstream_oauth_links",
            &[
                "upstream_oauth_link_id",
                "upstream_oauth_provider_id",
                "user_id",
                "subject",
                "created_at",
            ],
        );
        self.progress.phase("upstream links");
        let now = self.clock.now_unix_ms();
        let mut rows = reader.external_ids();
        while let Some(external) = rows.try_next().await.map_err(Syn2masError::Source)? {
            self.progress.advance();
            let Some(user) = self.users.get(&external.user_id) else {
                self.summary.skip("external ids of users not imported");
                continue;
            };
            let Some(provider) = self.providers.get(&external.auth_provider) else {
                return Err(Syn2masError::UnknownProvider(external.auth_provider));
            };
            let row = vec![
                new_ulid(now, self.rng).to_string().into(),
                provider.clone().into(),
                user.id.to_string().into(),
                external.external_id.into(),
                now.into(),
            ];
            links.push(self.conn, row).await?;
        }
        drop(rows);
        links.flush(self.conn).await?;
        self.summary.upstream_links = links.count();
        Ok(())
    }

    /// Devices become compat sessions; returns `(MXID, device id)` → session id.
    async fn devices(
        &mut self,
        reader: &mut SynapseReader,
    ) -> Result<HashMap<(String, String), Ulid>, Syn2masError> {
        let mut sessions = Batch::new(
            "compat_sessions",
            &[
                "compat_session_id",
                "user_id",
                "device_id",
                "is_synapse_admin",
                "created_at",
                "user_agent",
                "last_active_at",
                "last_active_ip",
                "human_name",
            ],
        );
        self.progress.phase("devices");
        let now = self.clock.now_unix_ms();
        let mut ids = HashMap::new();
        let mut rows = reader.devices();
        while let Some(device) = rows.try_next().await.map_err(Syn2masError::Source)? {
            self.progress.advance();
            let Some(user) = self.users.get(&device.user_id) else {
                self.summary.skip("devices of users not imported");
                continue;
            };
            if !user.sessions {
                self.summary.skip("devices of deactivated users and guests");
                continue;
            }
            let created_at = device.first_validated.unwrap_or(now);
            let id = new_ulid(created_at, self.rng);
            sessions
                .push(self.conn, session_row(&device, id, user, created_at))
                .await?;
            ids.insert((device.user_id, device.device_id), id);
        }
        drop(rows);
        sessions.flush(self.conn).await?;
        self.summary.compat_sessions = sessions.count();
        Ok(ids)
    }

    async fn tokens(
        &mut self,
        reader: &mut SynapseReader,
        sessions: &HashMap<(String, String), Ulid>,
    ) -> Result<(), Syn2masError> {
        let mut access = Batch::new(
            "compat_access_tokens",
            &[
                "compat_access_token_id",
                "compat_session_id",
                "access_token_sha256",
                "created_at",
                "expires_at",
                "first_used_at",
            ],
        );
        let mut refresh = Batch::new(
            "compat_refresh_tokens",
            &[
                "compat_refresh_token_id",
                "compat_session_id",
                "compat_access_token_id",
                "refresh_token_sha256",
                "created_at",
            ],
        );
        self.progress.phase("access tokens");
        let now = self.clock.now_unix_ms();
        let mut rows = reader.access_tokens();
        while let Some(token) = rows.try_next().await.map_err(Syn2masError::Source)? {
            self.progress.advance();
            let Some(session) = self.token_session(&token, sessions) else {
                continue;
            };
            let created_at = token.last_validated.unwrap_or(now);
            let id = new_ulid(created_at, self.rng);
            let row = vec![
                id.to_string().into(),
                session.to_string().into(),
                sha256_hex(&token.token).into(),
                created_at.into(),
                token.valid_until_ms.into(),
                token.last_validated.into(),
            ];
            access.push(self.conn, row).await?;
            if let Some(refresh_token) = &token.refresh_token {
                let row = vec![
                    new_ulid(created_at, self.rng).to_string().into(),
                    session.to_string().into(),
                    id.to_string().into(),
                    sha256_hex(refresh_token).into(),
                    created_at.into(),
                ];
                // A refresh token refers to its access token: write those first.
                if refresh.full_after_push() {
                    access.flush(self.conn).await?;
                }
                refresh.push(self.conn, row).await?;
            }
        }
        drop(rows);
        access.flush(self.conn).await?;
        refresh.flush(self.conn).await?;
        self.summary.access_tokens = access.count();
        self.summary.refresh_tokens = refresh.count();
        Ok(())
    }

    /// The session a token goes to, or `None` after counting why it is skipped.
    fn token_session(
        &mut self,
        token: &SynapseAccessToken,
        sessions: &HashMap<(String, String), Ulid>,
    ) -> Option<Ulid> {
        let reason = if token.puppets_user_id.is_some() {
            "puppet tokens (admins acting as a user)"
        } else if token.superseded != 0 {
            "refresh pairs superseded by a used successor"
        } else if !self.users.get(&token.user_id).is_some_and(|u| u.sessions) {
            "tokens of users without sessions (deactivated, guests, not imported)"
        } else if let Some(device) = &token.device_id {
            match sessions.get(&(token.user_id.clone(), device.clone())) {
                Some(id) => return Some(*id),
                None => "tokens of hidden or missing devices",
            }
        } else {
            "device-less tokens"
        };
        self.summary.skip(reason);
        None
    }
}

/// The localpart of `@localpart:server_name`, or `None` for another server.
fn localpart<'a>(mxid: &'a str, server_name: &str) -> Option<&'a str> {
    let (localpart, server) = mxid.strip_prefix('@')?.split_once(':')?;
    (server == server_name && !localpart.is_empty()).then_some(localpart)
}

fn user_row(
    user: &SynapseUser,
    id: Ulid,
    localpart: &str,
    created_at: i64,
    flag: impl Fn(i64) -> Option<i64>,
) -> Vec<Cell> {
    vec![
        id.to_string().into(),
        localpart.to_owned().into(),
        created_at.into(),
        flag(user.locked).into(),
        flag(user.deactivated).into(),
        (user.admin != 0).into(),
        (user.is_guest != 0).into(),
    ]
}

fn session_row(device: &SynapseDevice, id: Ulid, user: &UserInfo, created_at: i64) -> Vec<Cell> {
    // Synapse writes `-` and other non-addresses when it has none.
    let ip = device
        .ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string());
    vec![
        id.to_string().into(),
        user.id.to_string().into(),
        device.device_id.clone().into(),
        user.admin.into(),
        created_at.into(),
        device.user_agent.clone().into(),
        device.last_seen.into(),
        ip.into(),
        device.display_name.clone().into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_of_this_server_only() {
        assert_eq!(
            localpart("@alice:example.com", "example.com"),
            Some("alice")
        );
        assert_eq!(localpart("@alice:other.org", "example.com"), None);
        assert_eq!(
            localpart("@a:example.com:8448", "example.com:8448"),
            Some("a")
        );
        assert_eq!(localpart("alice", "example.com"), None);
    }
}
