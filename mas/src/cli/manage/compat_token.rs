//! `manage issue-compatibility-token USERNAME [--device-id D] [--admin]`: a non-expiring compat
//! access token (`mct_…`) for a user, e.g. for Synapse admin tools. `--admin` (alias: upstream's
//! `--yes-i-want-to-grant-synapse-admin-privileges`) adds `urn:synapse:admin:*` to it at
//! introspection. The device is created in the homeserver by a provisioning pass (which
//! syncs the devices).

use super::{Manage, queue};
use crate::auth::sessions::replace_compat_sessions_on_device;
use crate::crypto::{TokenKind, random, sha256_hex};
use crate::jobs::Job;
use crate::storage::compat::{self, NewCompatSession};

/// Arguments of `issue-compatibility-token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// For whom.
    pub username: String,
    /// The device id (default: 10 random alphanumerics).
    #[arg(long)]
    pub device_id: Option<String>,
    /// Grant Synapse admin privileges to the token.
    #[arg(long, alias = "yes-i-want-to-grant-synapse-admin-privileges")]
    pub admin: bool,
}

pub(super) async fn run(manage: &Manage, args: Args) -> anyhow::Result<Vec<String>> {
    let user = manage.user(&args.username).await?;
    if !user.is_valid() {
        anyhow::bail!("{} is locked or deactivated", user.username);
    }
    let mut rng = manage.ctx.rng.fork();
    let device_id = match args.device_id {
        Some(id) if id.is_empty() || id.len() > 255 => {
            anyhow::bail!("--device-id must be 1 to 255 characters")
        }
        Some(id) => id,
        None => random::compat_device_id(&mut rng),
    };
    let clock = manage.ctx.clock.as_ref();
    let token = TokenKind::CompatAccessToken.generate(&mut rng);
    let mut tx = manage.ctx.db.begin_write().await?;
    replace_compat_sessions_on_device(&mut tx, clock, user.id, &device_id).await?;
    let session = compat::add_compat_session(
        &mut tx,
        clock,
        &mut rng,
        NewCompatSession {
            user_id: user.id,
            device_id: &device_id,
            user_session_id: None,
            is_synapse_admin: args.admin,
            user_agent: None,
            human_name: None,
        },
    )
    .await?;
    compat::add_compat_access_token(
        &mut tx,
        clock,
        &mut rng,
        session.id,
        &sha256_hex(&token),
        None,
    )
    .await?;
    let job = queue(manage, &mut tx, &Job::ProvisionUser { user_id: user.id }).await?;
    tx.commit().await?;

    let mxid = manage.mxid(&user.username);
    let admin = if args.admin { ", Synapse admin" } else { "" };
    let done = format!("Created device {device_id} of {mxid} in the homeserver.");
    Ok(vec![
        format!("Issued a compatibility token for {mxid} (device {device_id}{admin}):"),
        token,
        manage.run_jobs(&[job], &done).await?,
    ])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;

    use super::super::{Command, Manage};
    use crate::cli::{Command as CliCommand, Options};
    use crate::clock::MockClock;
    use crate::crypto::{TokenKind, sha256_hex};
    use crate::homeserver::MockHomeserver;
    use crate::jobs::{JobContext, JobWaker};
    use crate::rng::RngSource;
    use crate::storage::testing::test_on_both_backends;
    use crate::storage::{self, Database, compat, users};

    fn command(args: &[&str]) -> Command {
        let argv = ["mas-cli", "manage", "issue-compatibility-token"]
            .iter()
            .chain(args);
        let Options { command, .. } = Options::try_parse_from(argv).unwrap();
        let CliCommand::Manage { command } = command else {
            unreachable!()
        };
        command
    }

    async fn issues_a_non_expiring_admin_token_and_creates_the_device(db: Database) {
        storage::migrate(&db).await.unwrap();
        let hs = Arc::new(MockHomeserver::new("example.com"));
        let clock = MockClock::default();
        let manage = Manage {
            ctx: JobContext {
                db: db.clone(),
                clock: Arc::new(clock.clone()),
                rng: RngSource::seeded(3),
                homeserver: hs.clone(),
                jobs: JobWaker::new(),
                mail: None,
            },
            passwords: None,
            server_name: "example.com".to_owned(),
            interactive: false,
        };
        let mut conn = db.pool().acquire().await.unwrap();
        let mut rng = RngSource::seeded(4).fork();
        let alice = users::add_user(&mut conn, &clock, &mut rng, "alice")
            .await
            .unwrap();

        for flag in ["--admin", "--yes-i-want-to-grant-synapse-admin-privileges"] {
            let lines = manage
                .run(command(&["alice", "--device-id", "ADMINTOOL", flag]))
                .await
                .unwrap();
            assert_eq!(
                lines[0],
                "Issued a compatibility token for @alice:example.com (device ADMINTOOL, \
                 Synapse admin):"
            );
            let token = &lines[1];
            assert_eq!(
                TokenKind::from_token(token),
                Some(TokenKind::CompatAccessToken)
            );
            let found = compat::lookup_compat_access_token(&mut conn, &sha256_hex(token))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.token.expires_at, None);
            assert!(found.session.is_synapse_admin);
            assert_eq!(found.user.id, alice.id);
            assert!(hs.devices("alice").contains("ADMINTOOL"));
        }
        // The second issue with the same device replaced the first session.
        assert_eq!(
            compat::list_active_compat_sessions(&mut conn, alice.id)
                .await
                .unwrap()
                .len(),
            1
        );

        let lines = manage.run(command(&["alice"])).await.unwrap();
        assert!(!lines[0].contains("admin"), "{}", lines[0]);
        let error = manage.run(command(&["nobody"])).await.unwrap_err();
        assert!(format!("{error:#}").contains("nobody"), "{error:#}");
    }

    test_on_both_backends!(issues_a_non_expiring_admin_token_and_creates_the_device);
}
