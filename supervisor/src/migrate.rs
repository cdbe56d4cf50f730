//! Taking over an existing Synapse (README "Moving from an existing Synapse"): importing another
//! Synapse's identity and data into the data dir (`appliance migrate --from`, or the stock
//! Cloudron package's `<data>/configs/homeserver.yaml` on the first start), bringing Synapse's
//! schema up to date (Synapse's `update_synapse_database` script), then `mas-cli syn2mas check`
//! and `migrate`, after a backup of what changes. Every step says what it does before doing it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bootstrap::{self, PrepareError};
use crate::env::{Database, Env};
use crate::fsutil::{ensure_dir, write_atomic};
use crate::paths::{Layout, PEPPER_FILE, mas_cli};
use crate::render::RenderError;
use crate::state::{self, Pin, StateError, SynapseImport};

pub mod old_config;
mod steps;

pub use old_config::{OldConfigError, OldDatabase, OldSynapse};
pub use steps::{copy_tree, count_users, sqlite_copy, syn2mas_args, utc_stamp};

/// `mas-cli syn2mas` exit statuses (its contract): errors, nothing written.
pub const EXIT_ERRORS: i32 = 10;
/// `mas-cli syn2mas check` only: warnings.
pub const EXIT_WARNINGS: i32 = 11;

/// Why a takeover stopped. `Display` is what the admin reads.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    OldConfig(#[from] OldConfigError),
    #[error(
        "the old Synapse's server name is {old:?} but this appliance's is {ours:?}; a Matrix \
         server name cannot change (start a new data dir with APPLIANCE_SERVER_NAME={old:?})"
    )]
    ServerName { old: String, ours: String },
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Failed(String),
    #[error("mas-cli syn2mas check found problems (nothing was changed):\n{0}")]
    CheckFailed(String),
    #[error("database: {0}")]
    Database(String),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> MigrateError {
    let what = what.to_string();
    move |source| MigrateError::Io { what, source }
}

/// What the automatic path does at `appliance run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoDecision {
    /// Synapse has users, MAS has none, and no migration was recorded: migrate.
    Migrate,
    /// Nothing to do, and why.
    Skip(&'static str),
}

/// The automatic path's rule: Synapse's database has users (appservice users aside) and MAS has
/// never run on this data dir (`mas_users` is `None`: its tables do not exist). Once MAS has run,
/// users in Synapse alone are not a Synapse to take over (a user provisioned in Synapse by hand,
/// say); `appliance migrate` still imports them on request.
pub fn decide(migrated: bool, synapse_users: u64, mas_users: Option<u64>) -> AutoDecision {
    if migrated {
        AutoDecision::Skip("already migrated from Synapse (appliance.json)")
    } else if synapse_users == 0 {
        AutoDecision::Skip("Synapse's database has no users")
    } else if mas_users.is_some_and(|n| n > 0) {
        AutoDecision::Skip("MAS already has users")
    } else if mas_users.is_some() {
        AutoDecision::Skip("MAS has run on this data dir already (its tables exist)")
    } else {
        AutoDecision::Migrate
    }
}

/// How far a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `syn2mas check` only (the rehearsal before a real import).
    Check,
    /// `syn2mas check`, then `syn2mas migrate --dry-run` (rolled back).
    DryRun,
    /// Backup, then `syn2mas migrate`, then the marker.
    Real,
}

/// The tools a takeover runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The Python with `matrix-synapse`.
    pub python: PathBuf,
    pub mas_cli: PathBuf,
}

impl Tools {
    pub fn new(env: &Env) -> Self {
        Tools {
            python: env.synapse_python.clone().unwrap_or_default(),
            mas_cli: mas_cli(),
        }
    }
}

/// Prints a step's line before it happens.
pub fn say(line: impl std::fmt::Display) {
    tracing::info!("migrate: {line}");
}

/// Imports `old` into `layout`: signing key, macaroon and form secrets, pepper (the files they
/// replace copied into `backup` first), media store (with `media`), and the database (SQLite:
/// a consistent copy; PostgreSQL: only the appliance's own database). Returns what to record.
pub fn import(
    env: &Env,
    layout: &Layout,
    old: &OldSynapse,
    backup: &Path,
    media: bool,
) -> Result<SynapseImport, MigrateError> {
    let secret = |name: &str, contents: &[u8], what: &str| -> Result<(), MigrateError> {
        let path = layout.secret(name);
        say(format_args!("{what}: into {}", path.display()));
        ensure_dir(&layout.secrets_dir(), 0o700).map_err(io_err(layout.secrets_dir().display()))?;
        keep(&path, backup)?;
        write_atomic(&path, contents, 0o600).map_err(io_err(path.display()))
    };
    let key = std::fs::read(&old.signing_key).map_err(io_err(old.signing_key.display()))?;
    secret(
        "synapse_signing.key",
        &key,
        &format!(
            "signing key {} (the federation identity)",
            old.signing_key.display()
        ),
    )?;
    if let Some(v) = &old.macaroon_secret_key {
        secret("synapse_macaroon", v.as_bytes(), "macaroon_secret_key")?;
    }
    if let Some(v) = &old.form_secret {
        secret("synapse_form_secret", v.as_bytes(), "form_secret")?;
    }
    if let Some(v) = &old.pepper {
        secret(PEPPER_FILE, v.as_bytes(), "password_config.pepper")?;
    }
    let media_dir = layout.synapse_dir().join("media_store");
    if old.media_store.is_dir() {
        if media {
            say(format_args!(
                "media store {}: copying into {} (hard links where possible; the old files stay)",
                old.media_store.display(),
                media_dir.display()
            ));
            copy_tree(&old.media_store, &media_dir).map_err(io_err(old.media_store.display()))?;
        } else {
            say(format_args!(
                "media store {}: would be copied into {} (skipped in a dry run)",
                old.media_store.display(),
                media_dir.display()
            ));
        }
    } else {
        say(format_args!(
            "media store {}: not there, nothing to copy",
            old.media_store.display()
        ));
    }
    import_database(env, layout, old, backup)?;
    Ok(SynapseImport {
        source: old.path.display().to_string(),
        password_login: old.password_login,
        synapse_idp_id: None,
    })
}

fn import_database(
    env: &Env,
    layout: &Layout,
    old: &OldSynapse,
    backup: &Path,
) -> Result<(), MigrateError> {
    match (&old.database, &env.database) {
        (OldDatabase::Sqlite(file), Database::Sqlite) => {
            let dest = layout.synapse_dir().join("homeserver.db");
            say(format_args!(
                "database {}: consistent copy into {}",
                file.display(),
                dest.display()
            ));
            ensure_dir(&layout.synapse_dir(), 0o750)
                .map_err(io_err(layout.synapse_dir().display()))?;
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", dest.display()));
                if path.exists() {
                    keep(&path, backup)?;
                    std::fs::remove_file(&path).map_err(io_err(path.display()))?;
                }
            }
            sqlite_copy(file, &dest)
        }
        (OldDatabase::Sqlite(file), Database::Postgres(_)) => Err(MigrateError::Refused(format!(
            "the old Synapse's database is the SQLite file {} but this appliance uses \
             PostgreSQL: port it first with Synapse's synapse_port_db, or run the appliance \
             without CLOUDRON_POSTGRESQL_*",
            file.display()
        ))),
        (OldDatabase::Postgres { .. }, Database::Sqlite) => Err(MigrateError::Refused(
            "the old Synapse's database is PostgreSQL but this appliance uses SQLite: point \
             CLOUDRON_POSTGRESQL_URL at that database"
                .to_owned(),
        )),
        (
            OldDatabase::Postgres {
                dbname,
                user,
                host,
                port,
            },
            Database::Postgres(pg),
        ) => {
            if *dbname != pg.database || *user != pg.user {
                return Err(MigrateError::Refused(format!(
                    "the old Synapse's database is {dbname:?} (user {user:?} on {host}:{port}) \
                     but this appliance's is {:?} (user {:?} on {}): the appliance only takes \
                     over a Synapse in its own database; point CLOUDRON_POSTGRESQL_URL at it",
                    pg.database,
                    pg.user,
                    pg.address()
                )));
            }
            say(format_args!(
                "database: Synapse's tables stay where they are in {dbname:?} (schema public)"
            ));
            Ok(())
        }
    }
}

/// Copies `path` (when it exists) into `backup`, under its own name.
pub fn keep(path: &Path, backup: &Path) -> Result<(), MigrateError> {
    if !path.exists() {
        return Ok(());
    }
    ensure_dir(backup, 0o700).map_err(io_err(backup.display()))?;
    let name = path.file_name().unwrap_or_default();
    let dest = backup.join(name);
    say(format_args!(
        "backup: {} into {}",
        path.display(),
        dest.display()
    ));
    std::fs::copy(path, &dest).map_err(io_err(path.display()))?;
    Ok(())
}

/// What a conversion works on: the data dir (`layout`, the real one or a rehearsal's copy), the
/// import's record to render and keep, the old config if there is one, and where backups go.
pub struct Conversion<'a> {
    /// The environment.
    pub env: &'a Env,
    /// The data dir converted.
    pub layout: &'a Layout,
    /// The pinned server name.
    pub server_name: &'a str,
    /// The programs run.
    pub tools: &'a Tools,
    /// What was imported, rendered into the configs (recorded only by a real run).
    pub import: &'a SynapseImport,
    /// The old Synapse's config, when there is one.
    pub old: Option<&'a OldSynapse>,
    /// Where the files a real run replaces are kept.
    pub backup: &'a Path,
}

/// Everything after the import: Synapse's schema, MAS's schema, `syn2mas check`, then as far as
/// `mode` says. Returns `syn2mas`'s report (the check's, then the summary).
pub fn convert(c: &Conversion<'_>, mode: Mode) -> Result<String, MigrateError> {
    // On PostgreSQL MAS's tables are made in the shared database; a check, a dry run or a failed
    // run that made them drops them again, so the database is left as it was found.
    let fresh_pg = match &c.env.database {
        Database::Postgres(pg) if !steps::pg_mas_tables_exist(pg)? => Some(pg),
        _ => None,
    };
    let result = convert_steps(c, mode);
    if let Some(pg) = fresh_pg
        && (mode != Mode::Real || result.is_err())
    {
        say("MAS's schema: dropping the empty tables this run made (nothing is left behind)");
        steps::pg_drop_mas_tables(pg)?;
    }
    result
}

/// [`convert`] without the PostgreSQL clean-up.
fn convert_steps(c: &Conversion<'_>, mode: Mode) -> Result<String, MigrateError> {
    let Conversion {
        env,
        layout,
        server_name,
        tools,
        import,
        old,
        backup,
    } = *c;
    let rendered = crate::render::render_with(env, layout, server_name, Some(import))?;
    crate::render::write(layout, &rendered)?;
    let synapse_config = steps::syn2mas_synapse_config(layout, &rendered.homeserver, old)?;
    if mode != Mode::Real && matches!(env.database, Database::Postgres(_)) {
        say("Synapse's schema: not upgraded in a check or dry run on PostgreSQL (it would write)");
    } else {
        say("Synapse's schema: upgrading to this Synapse's (update_synapse_database)");
        steps::run(
            Command::new(&tools.python)
                .args([
                    "-m",
                    "synapse._scripts.update_synapse_database",
                    "--database-config",
                ])
                .arg(layout.homeserver_yaml())
                .current_dir(layout.synapse_dir()),
            "update_synapse_database",
        )?;
    }
    say("MAS's schema: mas-cli database migrate (MAS's tables, empty)");
    steps::run(
        Command::new(&tools.mas_cli)
            .arg("-c")
            .arg(layout.mas_yaml())
            .args(["database", "migrate"]),
        "mas-cli database migrate",
    )?;
    say("mas-cli syn2mas check");
    let (code, mut report) = steps::syn2mas(tools, layout, &synapse_config, "check", false)?;
    match code {
        0 | EXIT_WARNINGS => {}
        EXIT_ERRORS => return Err(MigrateError::CheckFailed(report)),
        other => {
            return Err(MigrateError::Failed(format!(
                "mas-cli syn2mas check ended with status {other}:\n{report}"
            )));
        }
    }
    let dry_run = match mode {
        Mode::Check => return Ok(report),
        Mode::DryRun => true,
        Mode::Real => false,
    };
    if !dry_run {
        backup_mas(env, layout, backup)?;
    }
    say(if dry_run {
        "mas-cli syn2mas migrate --dry-run (rolled back)"
    } else {
        "mas-cli syn2mas migrate"
    });
    let (code, summary) = steps::syn2mas(tools, layout, &synapse_config, "migrate", dry_run)?;
    if code != 0 {
        return Err(MigrateError::Failed(format!(
            "mas-cli syn2mas migrate ended with status {code}:\n{summary}"
        )));
    }
    report.push_str(&summary);
    if !dry_run {
        state::update(layout, |s| {
            s.synapse_import = Some(import.clone());
            s.migrated_from_synapse = Some(steps::unix_now());
        })?;
        bootstrap::render_and_write(env, layout, server_name)?;
    }
    Ok(report)
}

/// Before `syn2mas migrate`: SQLite, a copy of `mas.db` (migrated, empty); PostgreSQL, nothing
/// to keep: `syn2mas` only writes into an empty `mas` schema.
fn backup_mas(env: &Env, layout: &Layout, backup: &Path) -> Result<(), MigrateError> {
    match env.database {
        Database::Sqlite => {
            let db = layout.mas_dir().join("mas.db");
            ensure_dir(backup, 0o700).map_err(io_err(backup.display()))?;
            let dest = backup.join("mas.db");
            say(format_args!(
                "backup: {} into {}",
                db.display(),
                dest.display()
            ));
            sqlite_copy(&db, &dest)
        }
        Database::Postgres(_) => {
            say(
                "backup: none needed, MAS's schema `mas` is empty before the migration (going back is dropping it)",
            );
            Ok(())
        }
    }
}

/// The pinned server name must be the old Synapse's.
pub fn check_server_name(old: &OldSynapse, ours: &str) -> Result<(), MigrateError> {
    if old.server_name == ours {
        Ok(())
    } else {
        Err(MigrateError::ServerName {
            old: old.server_name.clone(),
            ours: ours.to_owned(),
        })
    }
}

/// `appliance migrate`'s options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// Another Synapse's `homeserver.yaml` to import.
    pub from: Option<PathBuf>,
}

/// `appliance migrate` (and the first start's takeovers): refuses a second migration; then,
/// on copies in a scratch dir, the import and `syn2mas check` (and with `dry_run`, `migrate
/// --dry-run`); without `dry_run`, once that passed, the same for real. Returns `syn2mas`'s
/// report and summary. With `dry_run`, nothing in the data dir changes.
pub fn by_hand(
    env: &Env,
    layout: &Layout,
    pin: &Pin,
    tools: &Tools,
    options: &Options,
) -> Result<String, MigrateError> {
    if tools.python.as_os_str().is_empty() {
        return Err(MigrateError::Refused(
            "APPLIANCE_SYNAPSE_PYTHON: not set, and no Synapse venv found; it is needed to bring \
             Synapse's schema up to date"
                .to_owned(),
        ));
    }
    let current = state::read(layout);
    if let Some(at) = current.as_ref().and_then(|s| s.migrated_from_synapse) {
        return Err(MigrateError::Refused(format!(
            "already migrated from Synapse at {} ({}): a second migration is refused",
            steps::utc_stamp(at),
            layout.state_file().display()
        )));
    }
    let old = options.from.as_deref().map(OldSynapse::read).transpose()?;
    if let Some(old) = &old {
        check_server_name(old, pin.server_name())?;
    }
    let earlier = current.and_then(|s| s.synapse_import);
    let scratch = steps::Scratch::new(layout)?;
    say(format_args!(
        "rehearsal on copies in {} (the data dir is not touched)",
        scratch.layout.data.display()
    ));
    let rehearsal = (|| {
        bootstrap::prepare(env, &scratch.layout, pin)?;
        let backup = scratch.layout.backups_dir();
        let record = take(
            env,
            &scratch.layout,
            old.as_ref(),
            earlier.clone(),
            &backup,
            false,
        )?;
        let mode = if options.dry_run {
            Mode::DryRun
        } else {
            Mode::Check
        };
        let conversion = Conversion {
            env,
            layout: &scratch.layout,
            server_name: pin.server_name(),
            tools,
            import: &record,
            old: old.as_ref(),
            backup: &backup,
        };
        convert(&conversion, mode)
    })();
    drop(scratch);
    let report = rehearsal?;
    if options.dry_run {
        return Ok(report);
    }
    let backup = steps::backup_dir(layout);
    let record = take(env, layout, old.as_ref(), earlier, &backup, true)?;
    let conversion = Conversion {
        env,
        layout,
        server_name: pin.server_name(),
        tools,
        import: &record,
        old: old.as_ref(),
        backup: &backup,
    };
    convert(&conversion, Mode::Real)
}

/// The import (when there is an old config) and the record to render and keep.
fn take(
    env: &Env,
    layout: &Layout,
    old: Option<&OldSynapse>,
    earlier: Option<SynapseImport>,
    backup: &Path,
    media: bool,
) -> Result<SynapseImport, MigrateError> {
    let Some(old) = old else {
        // Users found in place: whoever had a password keeps using it.
        return Ok(earlier.unwrap_or(SynapseImport {
            source: "database".to_owned(),
            password_login: true,
            synapse_idp_id: None,
        }));
    };
    let mut record = import(env, layout, old, backup, media)?;
    record.synapse_idp_id = idp_for_platform(env, old);
    if let Some(id) = &record.synapse_idp_id {
        say(format_args!(
            "SSO links: Synapse's provider {id:?} becomes the platform provider"
        ));
    }
    Ok(record)
}

/// At `appliance run`, after the configs were written: adopts the stock Cloudron package's
/// config when there is one not adopted yet, else migrates when [`decide`] says so.
pub fn on_start(
    env: &Env,
    layout: &Layout,
    pin: &Pin,
    tools: &Tools,
    counts: impl FnOnce() -> Result<(u64, Option<u64>), MigrateError>,
) -> Result<Option<String>, MigrateError> {
    let current = state::read(layout);
    let migrated = current
        .as_ref()
        .is_some_and(|s| s.migrated_from_synapse.is_some());
    let adopted = current.as_ref().is_some_and(|s| s.synapse_import.is_some());
    let package = layout.cloudron_package_config();
    if !migrated && !adopted && package.is_file() {
        say(format_args!(
            "{} is the stock Synapse package's config: taking it over (its files are kept)",
            package.display()
        ));
        let options = Options {
            dry_run: false,
            from: Some(package),
        };
        return by_hand(env, layout, pin, tools, &options).map(Some);
    }
    if migrated {
        return Ok(None);
    }
    // Only now the databases are opened: a data dir that was migrated already costs nothing.
    let counts = counts()?;
    match decide(migrated, counts.0, counts.1) {
        AutoDecision::Skip(why) => {
            tracing::debug!(reason = why, "no migration from Synapse");
            Ok(None)
        }
        AutoDecision::Migrate => {
            say(format_args!(
                "Synapse's database has {} users and MAS has never run here: migrating them",
                counts.0
            ));
            by_hand(env, layout, pin, tools, &Options::default()).map(Some)
        }
    }
}

/// The platform provider takes over the old OIDC provider's links when there is exactly one.
pub fn idp_for_platform(env: &Env, old: &OldSynapse) -> Option<String> {
    match (env.oidc.is_some(), old.oidc_provider_ids.as_slice()) {
        (true, [one]) => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
