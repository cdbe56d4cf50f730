//! Getting from the environment to a ready plan: the read-only pre-flight (nothing is written
//! if any check fails, so a bad start leaves the data dir untouched), then the writes
//! (directories, pinned state, secrets, rendered configs), then the child specs.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::child::ChildSpec;
use crate::env::{Database, Env};
use crate::fsutil::ensure_dir;
use crate::paths::{Layout, mas_cli};
use crate::render::RenderError;
use crate::secrets::SecretsError;
use crate::state::{Pin, StateError};
use crate::{appservices, database, render, secrets, state};

/// Problems found before anything was written, one line each.
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

/// Checks everything that can be checked without writing, and binds the public port.
pub async fn preflight(
    env: &Env,
    layout: &Layout,
    need_runtime: bool,
) -> Result<(Pin, Option<TcpListener>), Problems> {
    let mut problems = Vec::new();
    let pin = match state::check(layout, env) {
        Ok(pin) => Some(pin),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let mut listener = None;
    if need_runtime {
        if env.synapse_python.is_none() {
            problems.push(
                "APPLIANCE_SYNAPSE_PYTHON: not set, and no Synapse venv found (/app/code/venv or \
                 the repository's .venv); run ./start/run or set it"
                    .to_owned(),
            );
        }
        let mas = mas_cli();
        if !mas.exists() {
            problems.push(format!(
                "mas-cli not found at {} (build it next to appliance)",
                mas.display()
            ));
        }
        match TcpListener::bind((Ipv4Addr::UNSPECIFIED, env.http_port)) {
            Ok(l) => listener = Some(l),
            Err(e) => problems.push(format!(
                "APPLIANCE_HTTP_PORT: cannot listen on port {}: {e}",
                env.http_port
            )),
        }
        for (var, port) in [
            ("APPLIANCE_SYNAPSE_PORT", env.synapse_port),
            ("APPLIANCE_MAS_PORT", env.mas_port),
        ] {
            if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                problems.push(format!("{var}: cannot use 127.0.0.1:{port}: {e}"));
            }
        }
    }
    if let Err(appservices::Problems(found)) = appservices::load(&layout.appservices_dir()) {
        problems.extend(found.iter().map(ToString::to_string));
    }
    if let Database::Postgres(pg) = &env.database
        && let Err(e) = database::check(pg, env.db_wait).await
    {
        problems.push(e.to_string());
    }
    match pin {
        Some(pin) if problems.is_empty() => Ok((pin, listener)),
        _ => Err(Problems(problems)),
    }
}

/// Why [`prepare`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Creates the directories, pins the state on first start, creates missing secrets and writes
/// the rendered configs. Returns the server name in force.
pub fn prepare(env: &Env, layout: &Layout, pin: &Pin) -> Result<String, PrepareError> {
    for (dir, mode) in [
        (layout.data.clone(), 0o750),
        (layout.synapse_dir(), 0o750),
        (layout.mas_dir(), 0o750),
        (layout.overrides_dir(), 0o750),
        (layout.appservices_dir(), 0o700),
    ] {
        ensure_dir(&dir, mode).map_err(|source| PrepareError::CreateDir { path: dir, source })?;
    }
    if let Pin::Pinned {
        state,
        derived_differs: Some(derived),
    } = pin
    {
        tracing::warn!(
            pinned = %state.server_name,
            derived = %derived,
            "the derived server name changed; keeping the pinned one (set APPLIANCE_SERVER_NAME to silence this)"
        );
    }
    let state = state::pin(layout, pin, unix_now())?;
    let created = secrets::ensure_secrets(layout, &mut rand::rngs::OsRng)?;
    if !created.is_empty() {
        tracing::info!(secrets = ?created, "generated new secrets");
    }
    render_and_write(env, layout, &state.server_name)?;
    Ok(state.server_name)
}

/// Renders and writes every config; logs each ignored override.
pub fn render_and_write(env: &Env, layout: &Layout, server_name: &str) -> Result<(), RenderError> {
    let rendered = render::render(env, layout, server_name)?;
    for ignored in &rendered.ignored {
        tracing::warn!(file = %ignored.file, key = %ignored.key, reason = ignored.reason, "operator override ignored");
    }
    render::write(layout, &rendered)
}

/// The child processes: MAS's one-shot migration, then Synapse and MAS (start order).
pub fn children(env: &Env, layout: &Layout, python: &Path) -> (ChildSpec, Vec<ChildSpec>) {
    // Each child gets half of the stop budget, less a margin, so the whole stop fits in it.
    let grace = (env.stop_timeout.saturating_sub(Duration::from_secs(1))) / 2;
    let base_env = child_env();
    let mas_config = layout.mas_yaml().into_os_string();
    let mas = |name, args: &[&str], ready_url: Option<http::Uri>| ChildSpec {
        name,
        program: mas_cli(),
        args: [OsString::from("-c"), mas_config.clone()]
            .into_iter()
            .chain(args.iter().map(OsString::from))
            .collect(),
        env: base_env.clone(),
        cwd: layout.mas_dir(),
        ready_url,
        grace,
    };
    let migrate = mas("mas", &["database", "migrate"], None);
    let mut synapse_env = base_env.clone();
    synapse_env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    let synapse = ChildSpec {
        name: "synapse",
        program: python.to_owned(),
        args: vec![
            "-m".into(),
            "synapse.app.homeserver".into(),
            "-c".into(),
            layout.homeserver_yaml().into_os_string(),
            // Keep stderr the real stderr: with Twisted's redirection, the log handler would
            // write into the logging system itself after a SIGHUP reload.
            "--no-redirect-stdio".into(),
        ],
        env: synapse_env,
        cwd: layout.synapse_dir(),
        ready_url: uri(
            SocketAddr::from((Ipv4Addr::LOCALHOST, env.synapse_port)),
            "/health",
        ),
        grace,
    };
    let server = mas(
        "mas",
        &["server"],
        uri(
            SocketAddr::from((Ipv4Addr::LOCALHOST, env.mas_port)),
            "/auth/health",
        ),
    );
    (migrate, vec![synapse, server])
}

fn uri(addr: SocketAddr, path: &str) -> Option<http::Uri> {
    format!("http://{addr}{path}").parse().ok()
}

/// The environment children get: a short allow-list, never the platform's secrets.
fn child_env() -> Vec<(OsString, OsString)> {
    const PASSED: [&str; 12] = [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "RUST_LOG",
        "RUST_BACKTRACE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "LD_PRELOAD",
    ];
    let mut env: Vec<(OsString, OsString)> = PASSED
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    // Loopback calls between Synapse and MAS must never go through a proxy.
    let no_proxy = match std::env::var("no_proxy").or_else(|_| std::env::var("NO_PROXY")) {
        Ok(v) if !v.is_empty() => format!("{v},127.0.0.1,localhost"),
        _ => "127.0.0.1,localhost".to_owned(),
    };
    env.push(("no_proxy".into(), no_proxy.clone().into()));
    env.push(("NO_PROXY".into(), no_proxy.into()));
    env
}

/// Seconds since the Unix epoch, for the first-start record.
#[expect(
    clippy::disallowed_methods,
    reason = "the one wall-clock reading of the supervisor"
)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
