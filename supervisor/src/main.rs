//! `appliance`: the supervisor binary (docs/architecture.md#processes-and-ports).
//!
//! `run` is the container's entry point; `render`, `check`, `health`, `doctor`, `migrate` and
//! `mas -- ARGS` are tools for the admin and the image's health check.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use supervisor::bootstrap::{self, Problems};
use supervisor::env::Env;
use supervisor::paths::{Layout, mas_cli};
use supervisor::privileges::PrivilegeError;
use supervisor::router::{self, FrontContext, FrontPage, Limits, RouterConfig};
use supervisor::supervise::{self, Outcome, Plan};
use supervisor::{migrate, pid1, privileges};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "appliance",
    version,
    about = "The Matrix auth appliance: Synapse + built-in MAS behind one port"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render configs, start Synapse and MAS, serve the public port (the container entry point).
    Run,
    /// Write the configs (and first-start secrets) into the run dir, then exit.
    Render,
    /// Check the environment, the pinned server name and the database, then exit.
    Check,
    /// Exit 0 when /healthz on the public port answers 200 (for HEALTHCHECK).
    Health,
    /// Check a running appliance: delegation, public login paths, versions, database locale,
    /// free disk, secrets. One line per check; exit 1 when one failed.
    Doctor {
        /// Also send one test email to ADDRESS through MAS's mail path and say where it went.
        #[arg(long, value_name = "ADDRESS")]
        send_test_email: Option<String>,
    },
    /// Move an existing Synapse's users into MAS (README "Moving from an existing Synapse"):
    /// with --from, first import another Synapse's server identity, secrets, media and database.
    Migrate {
        /// Rehearse on copies and print the summary; nothing in the data dir changes.
        #[arg(long)]
        dry_run: bool,
        /// The other Synapse's homeserver.yaml.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Run `mas-cli` with the appliance's rendered config: `appliance mas -- manage ...`.
    Mas {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run) && pid1::is_pid1() {
        return exit_code(pid1::run());
    }
    // Started by the PID 1 shim (or by anything else that blocks signals), we would inherit a
    // blocked signal mask: SIGTERM would then never reach our handlers, nor our children's.
    pid1::unblock_signals();
    // The doctor's output is its lines; the supervisor's own logging only for warnings.
    init_tracing(if matches!(cli.command, Command::Doctor { .. }) {
        "warn"
    } else {
        "info"
    });
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let env = match Env::from_process(&cwd) {
        Ok(env) => env,
        Err(errors) => {
            return report(errors.0.iter().map(ToString::to_string));
        }
    };
    let layout = Layout::new(&env.data_dir, &env.run_dir);
    match cli.command {
        Command::Run => run(&env, &layout),
        Command::Render => render(&env, &layout),
        Command::Check => check(&env, &layout),
        Command::Health => health(&env),
        Command::Doctor { send_test_email } => doctor(&env, &layout, send_test_email.as_deref()),
        Command::Migrate { dry_run, from } => migrate(&env, &layout, dry_run, from),
        Command::Mas { args } => mas(&env, &layout, &args),
    }
}

fn run(env: &Env, layout: &Layout) -> ExitCode {
    let (server_name, listener) = match set_up(env, layout, true) {
        Ok((name, Some(listener))) => (name, listener),
        Ok((_, None)) => return report(["the public port was not bound".to_owned()]),
        Err(code) => return code,
    };
    tracing::info!(
        server_name = %server_name,
        origin = %env.origin_str(),
        data_dir = %env.data_dir.display(),
        database = if matches!(env.database, supervisor::env::Database::Sqlite) { "sqlite" } else { "postgres" },
        "starting"
    );
    if env.mail.is_none() {
        tracing::info!(
            "mail is off (no CLOUDRON_MAIL_* variables): email verification, password recovery \
             and Synapse notifications are unavailable"
        );
    }
    if supervisor::env::AccountPolicy::open_needs_token(env.registration, env.mail.is_some()) {
        tracing::info!(
            "APPLIANCE_REGISTRATION=open with mail off: registration needs a registration token \
             (`appliance mas -- manage issue-user-registration-token`), since no email can be \
             verified"
        );
    }
    if let Err(code) = migrate_on_start(env, layout) {
        return code;
    }
    let front_page = match front_page(env, layout, &server_name) {
        Ok(page) => page,
        Err(code) => return code,
    };
    let python = env.synapse_python.clone().unwrap_or_default();
    let (migrate, services) = bootstrap::children(env, layout, &python);
    let rerender_env = env.clone();
    let rerender_layout = layout.clone();
    let rerender_name = server_name;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return report([format!("cannot start the async runtime: {e}")]),
    };
    let outcome = runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let router_shutdown = CancellationToken::new();
        let config = RouterConfig {
            origin: env.origin.clone(),
            synapse: SocketAddr::from((Ipv4Addr::LOCALHOST, env.synapse_port)),
            mas: SocketAddr::from((Ipv4Addr::LOCALHOST, env.mas_port)),
            trusted_proxies: env.proxy_ip.into_iter().collect(),
            limits: Limits {
                max_connections: env.max_connections,
                request_idle_timeout: env.request_idle_timeout,
            },
            front_page,
        };
        let router = tokio::spawn(router::serve(
            listener,
            config,
            router_shutdown.clone(),
            Duration::from_millis(500),
        ));
        supervise::run(Plan {
            migrate,
            services,
            router,
            router_shutdown,
            rerender: Box::new(move || {
                bootstrap::render_and_write(&rerender_env, &rerender_layout, &rerender_name)
            }),
        })
        .await
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(Outcome::Stopped) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Failed(reason)) => report([reason]),
        Err(e) => report([format!("supervisor error: {e}")]),
    }
}

/// The front page, made once: `<data>/config/index.html` when the operator put one there, else
/// the built-in page for this server (README "The front page").
fn front_page(env: &Env, layout: &Layout, server_name: &str) -> Result<FrontPage, ExitCode> {
    let policy = supervisor::render::account_policy(env, layout, server_name);
    let context = FrontContext {
        server_name: server_name.to_owned(),
        registration: policy.password_registration_enabled,
        token_required: policy.password_registration_token_required,
    };
    FrontPage::at_start(&context, &layout.overrides_dir().join("index.html"))
        .map_err(|e| report([format!("front page: {e}")]))
}

/// The first start's takeovers (the stock Cloudron package's config, users found in Synapse's
/// database alone); a failed check stops the start.
fn migrate_on_start(env: &Env, layout: &Layout) -> Result<(), ExitCode> {
    let pin = supervisor::state::check(layout, env).map_err(|e| report([e.to_string()]))?;
    let counts = || supervisor::block_on(migrate::count_users(env, layout));
    match migrate::on_start(env, layout, &pin, &migrate::Tools::new(env), counts) {
        Ok(Some(summary)) => {
            tracing::info!(summary = %summary.trim_end(), "migrated from Synapse");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(report([format!("migration from Synapse: {e}")])),
    }
}

/// `appliance migrate [--dry-run] [--from FILE]`: a dry run only reads the data dir (the
/// pre-flight, then copies); a real one writes the configs first, as `render` does.
fn migrate(env: &Env, layout: &Layout, dry_run: bool, from: Option<PathBuf>) -> ExitCode {
    let pin = if dry_run {
        match supervisor::block_on(bootstrap::preflight(env, layout, false)) {
            Ok((pin, _)) => pin,
            Err(Problems(lines)) => return report(lines),
        }
    } else {
        if let Err(code) = set_up(env, layout, false) {
            return code;
        }
        match supervisor::state::check(layout, env) {
            Ok(pin) => pin,
            Err(e) => return report([e.to_string()]),
        }
    };
    let options = migrate::Options { dry_run, from };
    match migrate::by_hand(env, layout, &pin, &migrate::Tools::new(env), &options) {
        Ok(summary) => {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{summary}");
            let _ = writeln!(
                out,
                "{}",
                if dry_run {
                    "dry run: nothing in the data dir was changed"
                } else {
                    "migrated; start the appliance as usual"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => report([e.to_string()]),
    }
}

fn render(env: &Env, layout: &Layout) -> ExitCode {
    if let Err(code) = set_up(env, layout, false) {
        return code;
    }
    let mut out = std::io::stdout().lock();
    for path in [
        layout.homeserver_yaml(),
        layout.synapse_log_yaml(),
        layout.mas_yaml(),
    ] {
        let _ = writeln!(out, "{}", path.display());
    }
    ExitCode::SUCCESS
}

fn check(env: &Env, layout: &Layout) -> ExitCode {
    match supervisor::block_on(bootstrap::preflight(env, layout, false)) {
        Ok((pin, _)) => {
            let _ = writeln!(
                std::io::stdout(),
                "configuration OK (server name {}, data dir {})",
                pin.server_name(),
                layout.data.display()
            );
            ExitCode::SUCCESS
        }
        Err(Problems(lines)) => report(lines),
    }
}

fn health(env: &Env) -> ExitCode {
    let url: http::Uri = match format!("http://127.0.0.1:{}/healthz", env.http_port).parse() {
        Ok(u) => u,
        Err(e) => return report([format!("bad health URL: {e}")]),
    };
    match supervisor::block_on(supervisor::probe::probe(&url, Duration::from_secs(5))) {
        Ok(()) => {
            let _ = writeln!(std::io::stdout(), "healthy");
            ExitCode::SUCCESS
        }
        Err(e) => report([format!("unhealthy: {url}: {e}")]),
    }
}

/// `appliance doctor`: the checks, then (when asked) `mas-cli doctor --send-test-email` with
/// the rendered config.
fn doctor(env: &Env, layout: &Layout, send_test_email: Option<&str>) -> ExitCode {
    let (server_name, pin_problem) = match supervisor::state::check(layout, env) {
        Ok(pin) => (pin.server_name().to_owned(), None),
        Err(e) => (env.server_name.clone(), Some(e.to_string())),
    };
    let mut checks = supervisor::block_on(supervisor::doctor::run(env, layout, &server_name));
    if let Some(problem) = pin_problem {
        checks.insert(
            0,
            supervisor::doctor::Check {
                ok: false,
                text: format!("server name: {problem}"),
            },
        );
    }
    let mut ok = checks.iter().all(|c| c.ok);
    {
        let mut out = std::io::stdout().lock();
        for check in &checks {
            let _ = writeln!(out, "{check}");
        }
        let _ = out.flush();
    }
    if let Some(address) = send_test_email {
        if !layout.mas_yaml().exists()
            && let Err(code) = set_up(env, layout, false)
        {
            return code;
        }
        // As root with a target user, only `mas-cli` changes user: the checks above stay root.
        // (Rendering, when it had to happen, already made this process that user.)
        let status = privileges::target(env.user.as_deref(), env.cloudron)
            .map_err(|e| e.to_string())
            .and_then(|target| {
                supervisor::doctor::test_email_command(
                    &mas_cli(),
                    &layout.mas_yaml(),
                    address,
                    target.as_ref(),
                )
                .status()
                .map_err(|e| format!("cannot run {}: {e}", mas_cli().display()))
            });
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => ok = false,
            Err(e) => {
                ok = false;
                let _ = writeln!(std::io::stdout(), "❌ test email: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Replaces this process with `mas-cli -c <run>/mas.yaml ARGS`, rendering first if needed.
/// As root with a target user, both paths become that user before `exec` (rendering does it
/// itself), so `mas-cli` never runs as root with a config that user can write.
fn mas(env: &Env, layout: &Layout, args: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let ready = if layout.mas_yaml().exists() {
        become_target_user(env, layout).map_err(|e| report([e.to_string()]))
    } else {
        set_up(env, layout, false).map(drop)
    };
    if let Err(code) = ready {
        return code;
    }
    let err = std::process::Command::new(mas_cli())
        .arg("-c")
        .arg(layout.mas_yaml())
        .args(args)
        .exec();
    report([format!("cannot run {}: {err}", mas_cli().display())])
}

/// How `run`, `render`, and `mas` or `doctor --send-test-email` with nothing rendered yet,
/// start: the read-only pre-flight (with `need_runtime`, the runtime checks and the public
/// port's listener too), then, as root with a target user, becoming that user, then the writes
/// (state, secrets, configs). Returns the server name in force and the listener; on failure the
/// problems are already reported and the exit code is the error.
fn set_up(
    env: &Env,
    layout: &Layout,
    need_runtime: bool,
) -> Result<(String, Option<TcpListener>), ExitCode> {
    let (pin, listener) = supervisor::block_on(bootstrap::preflight(env, layout, need_runtime))
        .map_err(|Problems(lines)| report(lines))?;
    become_target_user(env, layout).map_err(|e| report([e.to_string()]))?;
    let server_name = bootstrap::prepare(env, layout, &pin).map_err(|e| report([e.to_string()]))?;
    Ok((server_name, listener))
}

/// As root with a target user: give it the data and run dirs, then become it.
fn become_target_user(env: &Env, layout: &Layout) -> Result<(), PrivilegeError> {
    let target = privileges::target(env.user.as_deref(), env.cloudron)?;
    let Some(target) = target else {
        if privileges::is_root() {
            tracing::warn!(
                "running as root; set APPLIANCE_USER to run Synapse and MAS as another user"
            );
        }
        return Ok(());
    };
    for dir in [&layout.data, &layout.run] {
        std::fs::create_dir_all(dir).map_err(|source| PrivilegeError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        privileges::chown_tree(dir, &target)?;
    }
    privileges::drop_to(&target)?;
    tracing::info!(user = %target.name, uid = target.uid.as_raw(), "dropped privileges");
    Ok(())
}

/// Prints each problem as one line on stderr and returns the failure exit code.
fn report(lines: impl IntoIterator<Item = String>) -> ExitCode {
    let mut err = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(err, "appliance: {line}");
    }
    ExitCode::FAILURE
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("APPLIANCE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
}
