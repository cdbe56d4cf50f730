//! `appliance doctor`: checks what an admin gets wrong, one line per check, `✅` or `❌` with
//! what to do. Is the appliance running; is delegation served on the server name's domain
//! (the exact JSON expected); do the login paths reach MAS through the public origin; which
//! Synapse and MAS run; is the PostgreSQL database's collation `C`; is there free disk on the
//! data dir; are the secrets present with the right modes; which appservices are registered, and
//! does each one's URL answer; who may register and whether passwords can be recovered.
//!
//! Every network check has a short timeout and they run concurrently, so the doctor never hangs.
//! It reads only: nothing is created, rendered or fixed here. The test email is `mas-cli
//! doctor --send-test-email` ([`test_email_command`]), which `main.rs` runs with the rendered
//! config, as the appliance's user when there is one.

pub(crate) mod http;

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use url::Url;

use self::http::FetchError;
use crate::env::{Database, Env};
use crate::paths::{Layout, SECRET_FILES, mas_cli};
use crate::privileges::{Target, command_as};

/// Timeout of each network check.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Below this much free space on the data dir, the disk check fails.
pub const MIN_FREE_BYTES: u64 = 1 << 30;
/// The Synapse version the image and the tests pin (start/lib/versions.sh).
const VERSIONS_SH: &str = include_str!("../../start/lib/versions.sh");

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub text: String,
}

impl Check {
    fn pass(text: impl Into<String>) -> Self {
        Check {
            ok: true,
            text: text.into(),
        }
    }

    fn fail(text: impl Into<String>) -> Self {
        Check {
            ok: false,
            text: text.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "✅" } else { "❌" };
        write!(f, "{mark} {}", self.text)
    }
}

/// Runs every check; `server_name` is the pinned one (or the derived one before the first
/// start).
pub async fn run(env: &Env, layout: &Layout, server_name: &str) -> Vec<Check> {
    let running = appliance_running(env).await;
    let is_running = running.ok;
    let origin = env.origin_str();
    let (server, client, login, discovery, synapse, mas, database, bridges) = tokio::join!(
        well_known_server(env, server_name),
        well_known_client(env, server_name),
        login_path(&origin),
        mas_discovery(&origin),
        synapse_version(env, is_running),
        mas_version(env, is_running),
        database(env),
        appservices(layout, server_name),
    );
    let mut checks = vec![
        running,
        server,
        client,
        login,
        discovery,
        synapse,
        mas,
        database,
        free_disk(&layout.data),
        secrets(layout),
        accounts(env, layout, server_name),
    ];
    checks.extend(bridges);
    checks
}

async fn appliance_running(env: &Env) -> Check {
    let url = format!("http://127.0.0.1:{}/healthz", env.http_port);
    let Ok(parsed) = Url::parse(&url) else {
        return Check::fail(format!("bad health URL {url}"));
    };
    match http::get(&parsed, TIMEOUT).await {
        Ok(f) if f.status.is_success() => {
            Check::pass(format!("the appliance is running and healthy ({url})"))
        }
        Ok(f) => Check::fail(format!(
            "the appliance is running but not healthy: {url} answered {} {}; read its log \
             (`appliance run` output, on Cloudron the app's log view)",
            f.status.as_u16(),
            String::from_utf8_lossy(&f.body).trim()
        )),
        Err(e) => Check::fail(format!(
            "the appliance is not running: nothing healthy answers on {url} ({e}); start it \
             (`appliance run`, on Cloudron restart the app); the checks below that need it fail too"
        )),
    }
}

/// `PROGRAM -c CONFIG doctor --send-test-email ADDRESS`, to run as `target` when given.
///
/// `appliance doctor` stays root for its own checks, but the rendered config is the app user's to
/// write: run as root, `mas-cli` would trust a file that user controls. So, like every other
/// `mas-cli` the appliance starts, it runs as that user (`program` is [`mas_cli`] outside tests).
pub fn test_email_command(
    program: &Path,
    config: &Path,
    address: &str,
    target: Option<&Target>,
) -> std::process::Command {
    let mut command = command_as(program, target);
    command
        .arg("-c")
        .arg(config)
        .args(["doctor", "--send-test-email", address]);
    command
}

/// The base URL of the server name's domain: the origin itself when they are the same host.
fn server_name_base(env: &Env, server_name: &str) -> String {
    let host = server_name.split(':').next().unwrap_or(server_name);
    if env.origin.host_str() == Some(host) {
        env.origin_str()
    } else {
        format!("https://{host}")
    }
}

/// The `/.well-known/matrix/server` body the router serves (docs/architecture.md#public-routing).
pub fn expected_server(origin: &Url) -> Value {
    let host = origin.host_str().unwrap_or("localhost");
    let port = origin.port_or_known_default().unwrap_or(443);
    json!({ "m.server": format!("{host}:{port}") })
}

/// The `/.well-known/matrix/client` body the router serves (docs/architecture.md#public-routing).
pub fn expected_client(origin: &Url) -> Value {
    let base = origin.origin().ascii_serialization();
    json!({
        "m.homeserver": { "base_url": base },
        "org.matrix.msc2965.authentication": {
            "issuer": format!("{base}/auth/"),
            "account": format!("{base}/auth/account/"),
        },
    })
}

async fn well_known_server(env: &Env, server_name: &str) -> Check {
    let url = format!(
        "{}/.well-known/matrix/server",
        server_name_base(env, server_name)
    );
    let expected = expected_server(&env.origin);
    let fix = format!(
        "serve exactly {expected} at {url} (on Cloudron: Domains → the server name's domain → \
         Well Known locations, Matrix server = {}; see POSTINSTALL.md)",
        expected["m.server"].as_str().unwrap_or_default()
    );
    match fetch_json(&url).await {
        Ok(body) if body.get("m.server") == expected.get("m.server") => Check::pass(format!(
            "federation delegation: {url} names {}",
            expected["m.server"]
        )),
        Ok(body) => Check::fail(format!(
            "federation delegation: {url} answers {body}; {fix}"
        )),
        Err(e) => Check::fail(format!("federation delegation: {url}: {e}; {fix}")),
    }
}

async fn well_known_client(env: &Env, server_name: &str) -> Check {
    let url = format!(
        "{}/.well-known/matrix/client",
        server_name_base(env, server_name)
    );
    let expected = expected_client(&env.origin);
    let fix = format!(
        "serve exactly {expected} at {url}, with the header Access-Control-Allow-Origin: * \
         (on Cloudron: Domains → Well Known locations; see POSTINSTALL.md)"
    );
    let same = |body: &Value, path: &[&str]| {
        let get = |v: &Value| path.iter().try_fold(v, |v, k| v.get(k)).cloned();
        let strip = |v: Option<Value>| {
            v.and_then(|v| v.as_str().map(|s| s.trim_end_matches('/').to_owned()))
        };
        strip(get(body)).is_some() && strip(get(body)) == strip(get(&expected))
    };
    match fetch_json(&url).await {
        Ok(body)
            if same(&body, &["m.homeserver", "base_url"])
                && same(&body, &["org.matrix.msc2965.authentication", "issuer"]) =>
        {
            Check::pass(format!(
                "client discovery: {url} names {} and the issuer {}",
                expected["m.homeserver"]["base_url"],
                expected["org.matrix.msc2965.authentication"]["issuer"]
            ))
        }
        Ok(body) => Check::fail(format!("client discovery: {url} answers {body}; {fix}")),
        Err(e) => Check::fail(format!("client discovery: {url}: {e}; {fix}")),
    }
}

async fn login_path(origin: &str) -> Check {
    let url = format!("{origin}/_matrix/client/v3/login");
    let fix = "the platform's reverse proxy must forward every path of the origin to the \
               appliance's public port (APPLIANCE_HTTP_PORT, 8000)";
    match fetch_json(&url).await {
        Ok(body)
            if body
                .get("flows")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty()) =>
        {
            let flows: Vec<&str> = body["flows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.get("type").and_then(Value::as_str))
                .collect();
            Check::pass(format!(
                "login through the origin: {url} offers {}",
                flows.join(", ")
            ))
        }
        Ok(body) => Check::fail(format!(
            "login through the origin: {url} answers {body}; {fix}"
        )),
        Err(e) => Check::fail(format!("login through the origin: {url}: {e}; {fix}")),
    }
}

async fn mas_discovery(origin: &str) -> Check {
    let url = format!("{origin}/auth/.well-known/openid-configuration");
    let issuer = format!("{origin}/auth/");
    match fetch_json(&url).await {
        Ok(body) if body.get("issuer").and_then(Value::as_str) == Some(issuer.as_str()) => {
            Check::pass(format!(
                "MAS through the origin: {url} names the issuer {issuer}"
            ))
        }
        Ok(body) => Check::fail(format!(
            "MAS through the origin: {url} names the issuer {} instead of {issuer}; \
             CLOUDRON_APP_ORIGIN must be the public origin users see",
            body.get("issuer").unwrap_or(&Value::Null)
        )),
        Err(e) => Check::fail(format!(
            "MAS through the origin: {url}: {e}; forward /auth/ on the origin to the appliance"
        )),
    }
}

/// `GET url` expecting a 2xx JSON answer.
async fn fetch_json(url: &str) -> Result<Value, FetchError> {
    let fetched = http::get(&Url::parse(url)?, TIMEOUT).await?;
    if !fetched.status.is_success() {
        return Err(FetchError::StatusFrom {
            status: fetched.status,
            url: fetched.url,
        });
    }
    fetched.json().ok_or(FetchError::NotJson(fetched.url))
}

/// The pinned Synapse version, from `start/lib/versions.sh`.
pub fn pinned_synapse_version() -> Option<&'static str> {
    VERSIONS_SH
        .lines()
        .find_map(|l| l.strip_prefix("SYNAPSE_VERSION="))
        .map(str::trim)
}

async fn synapse_version(env: &Env, running: bool) -> Check {
    if !running {
        return Check::fail("Synapse version: unknown, the appliance is not running");
    }
    let url = format!(
        "http://127.0.0.1:{}/_matrix/federation/v1/version",
        env.synapse_port
    );
    let found = fetch_json(&url).await.map(|body| {
        // Synapse appends git details when started inside a checkout: `1.163.2 (b=main,…)`.
        body.pointer("/server/version")
            .and_then(Value::as_str)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    });
    match (found, pinned_synapse_version()) {
        (Ok(version), Some(pinned)) if version == pinned => {
            Check::pass(format!("Synapse {version} is up (the pinned version)"))
        }
        (Ok(version), Some(pinned)) => Check::fail(format!(
            "Synapse {version} is up, but this release pins {pinned}; rebuild the venv \
             (start/lib/venv.sh) or the image"
        )),
        (Ok(version), None) => Check::pass(format!("Synapse {version} is up")),
        (Err(e), _) => Check::fail(format!(
            "Synapse does not answer on 127.0.0.1:{}: {e}; read the `synapse` lines of the log",
            env.synapse_port
        )),
    }
}

async fn mas_version(env: &Env, running: bool) -> Check {
    let ours = env!("CARGO_PKG_VERSION");
    let binary = mas_cli();
    let version = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(&binary)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let version = match version {
        Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or("?")
            .to_owned(),
        Ok(Ok(out)) => {
            return Check::fail(format!(
                "MAS: {} --version failed ({})",
                binary.display(),
                out.status
            ));
        }
        Ok(Err(e)) => {
            return Check::fail(format!(
                "MAS: cannot run {}: {e}; install mas-cli next to appliance",
                binary.display()
            ));
        }
        Err(_) => return Check::fail(format!("MAS: {} --version hung", binary.display())),
    };
    if version != ours {
        return Check::fail(format!(
            "MAS {version} does not match appliance {ours}; install both binaries from one build"
        ));
    }
    if !running {
        return Check::fail(format!(
            "MAS {version}: not running, the appliance is not running"
        ));
    }
    let url = format!("http://127.0.0.1:{}/auth/health", env.mas_port);
    match fetch_status(&url).await {
        Ok(()) => Check::pass(format!("MAS {version} is up ({url})")),
        Err(e) => Check::fail(format!(
            "MAS {version} does not answer {url}: {e}; read the `mas` lines of the log"
        )),
    }
}

async fn fetch_status(url: &str) -> Result<(), FetchError> {
    let fetched = http::get(&Url::parse(url)?, TIMEOUT).await?;
    if fetched.status.is_success() {
        Ok(())
    } else {
        Err(FetchError::Status(fetched.status))
    }
}

async fn database(env: &Env) -> Check {
    match &env.database {
        Database::Sqlite => Check::pass(
            "database: embedded SQLite in the data dir (no PostgreSQL variables; fine for \
             small servers)",
        ),
        Database::Postgres(pg) => match crate::database::check(pg, Duration::from_secs(3)).await {
            Ok(()) => Check::pass(format!(
                "database: PostgreSQL {} at {} has collation and ctype C",
                pg.database,
                pg.address()
            )),
            Err(e) => Check::fail(format!("database: {e}")),
        },
    }
}

/// Free space for unprivileged users on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, nix::Error> {
    let stat = nix::sys::statvfs::statvfs(dir)?;
    #[expect(
        clippy::useless_conversion,
        reason = "the field types differ between targets (u32 or u64)"
    )]
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    Ok(free)
}

fn free_disk(data: &Path) -> Check {
    check_free(data, free_bytes(data))
}

fn check_free(data: &Path, free: Result<u64, nix::Error>) -> Check {
    const MIB: u64 = 1 << 20;
    match free {
        Ok(free) if free >= MIN_FREE_BYTES => Check::pass(format!(
            "disk: {} MiB free on {}",
            free / MIB,
            data.display()
        )),
        Ok(free) => Check::fail(format!(
            "disk: only {} MiB free on {} (under 1 GiB); free space or grow the volume: \
             Synapse's media store and database grow there",
            free / MIB,
            data.display()
        )),
        Err(e) => Check::fail(format!(
            "disk: cannot read the free space of {}: {e}; does the data dir exist?",
            data.display()
        )),
    }
}

/// The secrets dir is 0700 and each secret exists with mode 0600.
pub fn secrets(layout: &Layout) -> Check {
    let dir = layout.secrets_dir();
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    let Ok(dir_mode) = mode(&dir) else {
        return Check::fail(format!(
            "secrets: {} does not exist; the appliance creates it on its first start \
             (if this server ran before, restore the data dir from a backup)",
            dir.display()
        ));
    };
    let mut problems = Vec::new();
    if dir_mode != 0o700 {
        problems.push(format!("chmod 700 {} (it is {dir_mode:o})", dir.display()));
    }
    let mut missing = Vec::new();
    for name in SECRET_FILES {
        let path = dir.join(name);
        match mode(&path) {
            Ok(0o600) => {}
            Ok(m) => problems.push(format!("chmod 600 {} (it is {m:o})", path.display())),
            Err(_) => missing.push(name),
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} missing: the next start generates new ones, which changes the server's \
             identity and signs everyone out; restore them from a backup if this server ran before",
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Check::pass(format!(
            "secrets: all {} present, files 0600 and {} 0700",
            SECRET_FILES.len(),
            dir.display()
        ))
    } else {
        Check::fail(format!("secrets: {}", problems.join("; ")))
    }
}

/// Who may register (`APPLIANCE_REGISTRATION`) and whether a forgotten password can be reset by
/// email: what the rendered mas.yaml says, with a Synapse takeover's password login applied.
/// Information, never a failure.
pub fn accounts(env: &Env, layout: &Layout, server_name: &str) -> Check {
    use crate::env::Registration;
    let policy = crate::render::account_policy(env, layout, server_name);
    let token_command = "`appliance mas -- manage issue-user-registration-token`";
    let registration = match env.registration {
        Registration::Off => "registration off (APPLIANCE_REGISTRATION=off; accounts come from                               `appliance mas -- manage register-user`)"
            .to_owned(),
        Registration::Token => format!("registration with a registration token ({token_command})"),
        Registration::Open if policy.password_registration_token_required => format!(
            "registration open, but mail is off: a registration token is needed ({token_command})"
        ),
        Registration::Open => "registration open to anyone".to_owned(),
    };
    let email =
        if policy.password_registration_enabled && policy.password_registration_email_required {
            ", with an email address verified by a code sent by mail"
        } else {
            ""
        };
    let recovery = if policy.password_recovery_enabled {
        "password recovery by email: available"
    } else if env.mail.is_none() {
        "password recovery: unavailable (mail is off: no CLOUDRON_MAIL_* variables)"
    } else {
        "password recovery: unavailable (password login is off)"
    };
    Check::pass(format!("accounts: {registration}{email}; {recovery}"))
}

/// One line per registered appservice (id, URL, sender) saying whether its URL answers, or one
/// line per problem of the registration files, or one line saying there are none.
pub async fn appservices(layout: &Layout, server_name: &str) -> Vec<Check> {
    let dir = layout.appservices_dir();
    let registrations = match crate::appservices::load(&dir) {
        Ok(r) if r.is_empty() => {
            return vec![Check::pass(format!(
                "appservices: none registered (put bridge registration files in {})",
                dir.display()
            ))];
        }
        Ok(r) => r,
        Err(crate::appservices::Problems(problems)) => {
            return problems
                .iter()
                .map(|p| {
                    Check::fail(format!(
                        "appservices: {p}; the appliance does not start until this is fixed"
                    ))
                })
                .collect();
        }
    };
    // Concurrently, so that many bridges down still cost one timeout.
    let mut probes = tokio::task::JoinSet::new();
    for (i, registration) in registrations.into_iter().enumerate() {
        let sender = format!("@{}:{server_name}", registration.sender_localpart);
        probes.spawn(async move { (i, appservice_reachable(&registration, &sender).await) });
    }
    let mut checks: Vec<(usize, Check)> = Vec::new();
    while let Some(joined) = probes.join_next().await {
        match joined {
            Ok(check) => checks.push(check),
            Err(e) => checks.push((usize::MAX, Check::fail(format!("appservices: {e}")))),
        }
    }
    checks.sort_by_key(|(i, _)| *i);
    checks.into_iter().map(|(_, check)| check).collect()
}

/// Any HTTP answer from the registration's `url` counts: the appservice API has no health
/// endpoint, and a bridge answers unknown paths with an error.
async fn appservice_reachable(
    registration: &crate::appservices::Registration,
    sender: &str,
) -> Check {
    let id = &registration.id;
    let file = &registration.file;
    let Some(url) = &registration.url else {
        return Check::pass(format!(
            "appservice {id} ({file}): no URL, push disabled; sender {sender}"
        ));
    };
    let answer = match Url::parse(url) {
        Ok(parsed) => http::get(&parsed, TIMEOUT).await.map(|f| f.status),
        Err(e) => Err(FetchError::BadUrl(e)),
    };
    match answer {
        Ok(status) => Check::pass(format!(
            "appservice {id} ({file}): {url} answers (HTTP {}); sender {sender}",
            status.as_u16()
        )),
        Err(e) => Check::fail(format!(
            "appservice {id} ({file}): {url}: {e}; sender {sender}; start the bridge, or fix              `url` in {file} (Synapse cannot push events to it)"
        )),
    }
}

#[cfg(test)]
mod tests;
