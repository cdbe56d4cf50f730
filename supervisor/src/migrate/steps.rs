//! The takeover's building blocks: file copies, a consistent SQLite copy, the tools it runs,
//! the user counts of the automatic path.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_yaml::Value;

use super::{MigrateError, OldSynapse, Tools, io_err};
use crate::env::{Database, Env};
use crate::fsutil::write_atomic;

use crate::paths::{Layout, PEPPER_FILE};

/// Copies the tree `from` into `to` (created as needed): hard links where the file system
/// allows (Synapse never rewrites a media file), else copies. Files already in `to` are kept.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file()
            && !dest.exists()
            && std::fs::hard_link(entry.path(), &dest).is_err()
        {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// A consistent copy of the SQLite database `from` at `to`: SQLite's online backup through the
/// `sqlite3` tool when there is one; else, once no process holds the file open, the file and
/// its write-ahead log.
pub fn sqlite_copy(from: &Path, to: &Path) -> Result<(), MigrateError> {
    let sqlite3 = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("sqlite3"))
        .find(|p| p.is_file());
    if let Some(sqlite3) = sqlite3 {
        let target = to.display().to_string().replace('\'', "''");
        return run(
            Command::new(sqlite3)
                .arg(from)
                .arg(format!(".backup '{target}'")),
            "sqlite3 .backup",
        );
    }
    if let Some(pid) = holder(from) {
        return Err(MigrateError::Refused(format!(
            "{}: process {pid} has it open (is the old Synapse still running?); stop it, or \
             install the sqlite3 tool for an online copy",
            from.display()
        )));
    }
    std::fs::copy(from, to).map_err(io_err(from.display()))?;
    let wal = PathBuf::from(format!("{}-wal", from.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", to.display())).map_err(io_err(wal.display()))?;
    }
    Ok(())
}

/// A process that has `file` open, found through `/proc/*/fd`.
fn holder(file: &Path) -> Option<u32> {
    let target = file.canonicalize().ok()?;
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target))
        {
            return Some(pid);
        }
    }
    None
}

/// Runs `cmd` (its output goes to the admin's terminal or the log); non-zero is an error.
pub(super) fn run(cmd: &mut Command, what: &str) -> Result<(), MigrateError> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| MigrateError::Failed(format!("cannot run {what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(MigrateError::Failed(format!("{what} failed ({status})")))
    }
}

/// The arguments given to `mas-cli` for `syn2mas VERB`.
pub fn syn2mas_args(
    mas_yaml: &Path,
    synapse_config: &Path,
    verb: &str,
    dry_run: bool,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        mas_yaml.into(),
        "syn2mas".into(),
        verb.into(),
    ];
    if dry_run {
        args.push("--dry-run".into());
    }
    args.push("--synapse-config".into());
    args.push(synapse_config.into());
    args
}

/// Runs `mas-cli syn2mas VERB`: its progress goes to stderr as it comes; returns the exit
/// status and the report it printed on stdout (also echoed).
pub(super) fn syn2mas(
    tools: &Tools,
    layout: &Layout,
    synapse_config: &Path,
    verb: &str,
    dry_run: bool,
) -> Result<(i32, String), MigrateError> {
    let output = Command::new(&tools.mas_cli)
        .args(syn2mas_args(
            &layout.mas_yaml(),
            synapse_config,
            verb,
            dry_run,
        ))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| MigrateError::Failed(format!("cannot run mas-cli syn2mas {verb}: {e}")))?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    for line in report.lines() {
        tracing::info!("syn2mas {verb} | {line}");
    }
    Ok((output.status.code().unwrap_or(-1), report))
}

/// Keys of an old Synapse's config that `syn2mas check` judges (its login methods and
/// registration), copied over the rendered config for it.
const AUTH_KEYS: &[&str] = &[
    "oidc_providers",
    "oidc_config",
    "saml2_config",
    "cas_config",
    "jwt_config",
    "password_config",
    "password_providers",
    "modules",
    "enable_registration",
    "allow_guest_access",
];

/// Writes `<run>/syn2mas-synapse.yaml`: the rendered `homeserver.yaml` (the database, server
/// name and paths in force), with the old config's login settings when there is one.
pub(super) fn syn2mas_synapse_config(
    layout: &Layout,
    rendered: &str,
    old: Option<&OldSynapse>,
) -> Result<PathBuf, MigrateError> {
    let mut config: Value = serde_yaml::from_str(rendered)
        .map_err(|e| MigrateError::Failed(format!("rendered homeserver.yaml: {e}")))?;
    if let Some(old) = old {
        let text = std::fs::read_to_string(&old.path).map_err(io_err(old.path.display()))?;
        let old_yaml: Value = serde_yaml::from_str(&text)
            .map_err(|e| MigrateError::Failed(format!("{}: {e}", old.path.display())))?;
        if let (Some(map), Some(old_map)) = (config.as_mapping_mut(), old_yaml.as_mapping()) {
            for key in AUTH_KEYS {
                if let Some(v) = old_map.get(*key) {
                    map.insert(Value::from(*key), v.clone());
                }
            }
        }
    }
    set_pepper_from_secret(layout, &mut config)?;
    let path = layout.syn2mas_synapse_yaml();
    let text = serde_yaml::to_string(&config)
        .map_err(|e| MigrateError::Failed(format!("syn2mas config: {e}")))?;
    write_atomic(&path, text.as_bytes(), 0o600).map_err(io_err(path.display()))?;
    Ok(path)
}

/// Without an old config to read it from (the automatic path on the appliance's own data dir),
/// Synapse's `password_config.pepper` is the one kept in `<secrets>/synapse_password_pepper`,
/// which the rendered mas.yaml's version-1 scheme reads too (trimmed, as MAS reads secret
/// files). A pepper the config already has wins.
fn set_pepper_from_secret(layout: &Layout, config: &mut Value) -> Result<(), MigrateError> {
    let file = layout.secret(PEPPER_FILE);
    if !file.exists() {
        return Ok(());
    }
    let pepper = std::fs::read_to_string(&file).map_err(io_err(file.display()))?;
    let Some(map) = config.as_mapping_mut() else {
        return Ok(());
    };
    let password_config = map
        .entry(Value::from("password_config"))
        .or_insert_with(|| Value::Mapping(serde_yaml::Mapping::new()));
    if let Some(password_config) = password_config.as_mapping_mut()
        && !password_config.contains_key("pepper")
    {
        password_config.insert(Value::from("pepper"), Value::from(pepper.trim()));
    }
    Ok(())
}

/// A connection to the appliance's PostgreSQL database.
async fn pg_connect(pg: &crate::env::Postgres) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::ConnectOptions as _;
    crate::database::connect_options(pg, "appliance-migrate")
        .connect()
        .await
}

/// Whether MAS's tables exist in the `mas` schema (PostgreSQL): its migrations table does.
pub(super) fn pg_mas_tables_exist(pg: &crate::env::Postgres) -> Result<bool, MigrateError> {
    crate::block_on(async {
        let mut conn = pg_connect(pg).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('mas._sqlx_migrations') IS NOT NULL")
                .fetch_one(&mut conn)
                .await?;
        Ok::<_, sqlx::Error>(exists)
    })
    .map_err(|e| MigrateError::Database(e.to_string()))
}

/// Drops every table of the `mas` schema (PostgreSQL), in one transaction: after a check or
/// dry run that created MAS's (empty) tables, the database is left as it was found.
pub(super) fn pg_drop_mas_tables(pg: &crate::env::Postgres) -> Result<(), MigrateError> {
    crate::block_on(async {
        use sqlx::Connection as _;
        let mut conn = pg_connect(pg).await?;
        let mut tx = conn.begin().await?;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'mas'")
                .fetch_all(&mut *tx)
                .await?;
        for table in tables {
            let quoted = table.replace('"', "\"\"");
            sqlx::raw_sql(&format!("DROP TABLE IF EXISTS mas.\"{quoted}\" CASCADE"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
    .map_err(|e| MigrateError::Database(e.to_string()))
}

/// Synapse's users that a migration would import: appservice users (a bridge's puppets and
/// sender, which Synapse registers itself while MAS is running) do not count.
pub(super) const SYNAPSE_USERS: &str = " WHERE appservice_id IS NULL";

/// `(users in Synapse's database, users in MAS's)`: a missing Synapse database or table counts
/// 0; MAS's count is `None` when its tables do not exist (MAS has never run on this data dir).
pub async fn count_users(env: &Env, layout: &Layout) -> Result<(u64, Option<u64>), MigrateError> {
    let db = |e: sqlx::Error| MigrateError::Database(e.to_string());
    match &env.database {
        Database::Sqlite => {
            let synapse =
                sqlite_count(&layout.synapse_dir().join("homeserver.db"), SYNAPSE_USERS).await;
            let mas = sqlite_count(&layout.mas_dir().join("mas.db"), "").await;
            Ok((synapse.map_err(db)?.unwrap_or(0), mas.map_err(db)?))
        }
        Database::Postgres(pg) => {
            use sqlx::Connection as _;
            let mut conn = pg_connect(pg).await.map_err(db)?;
            let mut counts = [None; 2];
            let tables = [("public.users", SYNAPSE_USERS), ("mas.users", "")];
            for (slot, (table, filter)) in counts.iter_mut().zip(tables) {
                let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(db)?;
                if exists {
                    let n: i64 =
                        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}{filter}"))
                            .fetch_one(&mut conn)
                            .await
                            .map_err(db)?;
                    *slot = Some(u64::try_from(n).unwrap_or(0));
                }
            }
            let _ = conn.close().await;
            Ok((counts[0].unwrap_or(0), counts[1]))
        }
    }
}

/// `SELECT COUNT(*) FROM users` + `filter` in a SQLite file opened read-only; `None` when the
/// file or its `users` table does not exist.
pub(super) async fn sqlite_count(file: &Path, filter: &str) -> Result<Option<u64>, sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    if !file.exists() {
        return Ok(None);
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .disable_statement_logging()
        .connect()
        .await?;
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'",
    )
    .fetch_one(&mut conn)
    .await?;
    let n: Option<i64> = if exists > 0 {
        Some(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM users{filter}"))
                .fetch_one(&mut conn)
                .await?,
        )
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(n.map(|n| u64::try_from(n).unwrap_or(0)))
}

/// Seconds since the Unix epoch, for the marker and the backup's name.
#[expect(
    clippy::disallowed_methods,
    reason = "the takeover's one wall-clock reading"
)]
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds (UTC; the civil-from-days algorithm).
pub fn utc_stamp(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `<data>/backups/<UTC timestamp>/` for a run starting now.
pub(super) fn backup_dir(layout: &Layout) -> PathBuf {
    layout.backups_dir().join(utc_stamp(unix_now()))
}

/// A scratch copy of the data dir's small parts (state, secrets, overrides, appservices, the
/// SQLite databases; never the media store) in the temp dir, removed when dropped.
pub(super) struct Scratch {
    pub layout: Layout,
    root: PathBuf,
}

impl Scratch {
    pub(super) fn new(real: &Layout) -> Result<Self, MigrateError> {
        let root = std::env::temp_dir().join(format!(
            "appliance-migrate-{}-{}",
            std::process::id(),
            unix_now()
        ));
        let layout = Layout::new(&root.join("data"), &root.join("run"));
        let scratch = Scratch { layout, root };
        crate::fsutil::ensure_dir(&scratch.root, 0o700).map_err(io_err(scratch.root.display()))?;
        let (from, to) = (real, &scratch.layout);
        crate::fsutil::ensure_dir(&to.data, 0o750).map_err(io_err(to.data.display()))?;
        if from.state_file().exists() {
            std::fs::copy(from.state_file(), to.state_file())
                .map_err(io_err(from.state_file().display()))?;
        }
        for (dir, into) in [
            (from.secrets_dir(), to.secrets_dir()),
            (from.overrides_dir(), to.overrides_dir()),
            (from.appservices_dir(), to.appservices_dir()),
        ] {
            if dir.is_dir() {
                // Real copies: the rehearsal replaces secrets (atomically, so links would do,
                // but a copy leaves no doubt).
                copy_files(&dir, &into).map_err(io_err(dir.display()))?;
            }
        }
        for (db, into) in [
            (from.synapse_dir().join("homeserver.db"), to.synapse_dir()),
            (from.mas_dir().join("mas.db"), to.mas_dir()),
        ] {
            if db.is_file() {
                crate::fsutil::ensure_dir(&into, 0o750).map_err(io_err(into.display()))?;
                sqlite_copy(&db, &into.join(db.file_name().unwrap_or_default()))?;
            }
        }
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy_files(from: &Path, to: &Path) -> io::Result<()> {
    crate::fsutil::ensure_dir(to, 0o700)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
