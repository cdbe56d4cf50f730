//! `mas-cli manage …` as a process: every verb's output lines and exit status, on SQLite and
//! PostgreSQL, with the homeserver endpoint on a closed port (so the jobs stay queued), and
//! once against the real Synapse (the user exists there when `register-user` returns).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mas::homeserver::{
    CALL_TIMEOUT, HomeserverConnection as _, ProvisionRequest, SynapseConnection,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::RngCore as _;
use sqlx::{Connection as _, Row as _};

use crate::synapse::{SECRET, SERVER_NAME, Synapse, synapse_python};

const MAS_CLI: &str = env!("CARGO_BIN_EXE_mas-cli");
const STRONG: &str = "correct horse battery staple 42";

/// A generated configuration with a migrated database.
struct Mas {
    dir: tempfile::TempDir,
}

impl Mas {
    /// `database` and `matrix` are YAML sections overlaid on a generated config.
    fn new(database: &str, matrix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mas = Self { dir };
        let generated = mas.command(&["config", "generate", "-o", "base.yaml"], false);
        assert!(generated.status.success(), "{}", text(&generated.stderr));
        let overlay = format!(
            "{database}{matrix}templates:\n  path: \"{}\"\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/mas"),
        );
        std::fs::write(mas.path().join("overlay.yaml"), overlay).unwrap();
        let migrated = mas.command(&["database", "migrate"], true);
        assert!(migrated.status.success(), "{}", text(&migrated.stderr));
        mas
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mas-cli` with the config and one more overlay file (`name`, holding `yaml`).
    fn with_overlay(&self, name: &str, yaml: &str) -> Command {
        std::fs::write(self.path().join(name), yaml).unwrap();
        let mut command = Command::new(MAS_CLI);
        command
            .args(["-c", "base.yaml", "-c", "overlay.yaml", "-c", name])
            .current_dir(self.path())
            .env_remove("RUST_LOG");
        command
    }

    fn command(&self, args: &[&str], with_config: bool) -> Output {
        let config: &[&str] = if with_config {
            &["-c", "base.yaml", "-c", "overlay.yaml"]
        } else {
            &[]
        };
        Command::new(MAS_CLI)
            .args(config)
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// `mas-cli manage ARGS…`, which must succeed silently on stderr: its stdout lines.
    fn ok(&self, args: &[&str]) -> Vec<String> {
        let output = self.command(&[&["manage"], args].concat(), true);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{args:?} failed: {stderr}{stdout}");
        assert_eq!(stderr, "", "{args:?}");
        stdout.lines().map(str::to_owned).collect()
    }

    /// `mas-cli manage ARGS…`, which must fail with exit 1 and one `error:` line: the line
    /// after `error: `.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.command(&[&["manage"], args].concat(), true);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        stderr
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or_else(|| panic!("{args:?}: {stderr}"))
            .to_owned()
    }
}

/// A child process, stopped with SIGTERM (which must end it with status 0) or killed when
/// the test fails first.
struct Running(std::process::Child);

impl Running {
    #[expect(
        clippy::disallowed_methods,
        reason = "a short synchronous poll while the server exits"
    )]
    fn stop(mut self) {
        let pid = Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback port nothing listens on: the homeserver is "down".
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unreachable_matrix() -> String {
    format!(
        "matrix:\n  homeserver: example.com\n  endpoint: \"http://127.0.0.1:{}/\"\n",
        closed_port()
    )
}

/// Asserts the second line says the job stays queued.
fn assert_stays_queued(line: &str, call: &str, queue: &str) {
    assert!(
        line.starts_with(&format!(
            "The homeserver was not updated ({call}: the homeserver is unreachable"
        )),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "the {queue} job stays queued and `mas-cli server` will retry it."
        )),
        "{line}"
    );
}

/// Every verb, its success lines and its failures, with the homeserver down.
fn every_verb_with_the_homeserver_down(mas: &Mas) {
    let lines = mas.ok(&[
        "register-user",
        "alice",
        "--password",
        STRONG,
        "--admin",
        "--email",
        "alice@example.com",
        "--display-name",
        "Alice",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "Created user alice (@alice:example.com), admin, with a password, display name \
         \"Alice\", email alice@example.com."
    );
    assert_stays_queued(&lines[1], "provision_user", "provision-user");

    let password_file = mas.path().join("bob-password");
    std::fs::write(&password_file, format!("{STRONG}\n")).unwrap();
    let password_file = password_file.to_str().unwrap();
    let lines = mas.ok(&["register-user", "bob", "--password-file", password_file]);
    assert_eq!(
        lines[0],
        "Created user bob (@bob:example.com), with a password."
    );
    let lines = mas.ok(&["register-user", "carol", "--yes"]);
    assert_eq!(
        lines[0],
        "Created user carol (@carol:example.com), without a password."
    );

    let failures: [(&[&str], &str); 12] = [
        (
            &["register-user", "alice", "-p", STRONG],
            "the username \"alice\" is already taken",
        ),
        (
            &["register-user", "Dave", "-p", STRONG],
            "invalid username \"Dave\": use only lower-case letters, digits and . = _ / + -",
        ),
        (
            &["register-user", "2024", "-p", STRONG],
            "invalid username \"2024\": it cannot be only digits",
        ),
        (
            &["register-user", "dave", "-p", "dave123"],
            "the password is too weak (passwords.minimum_complexity); choose a longer, less \
             guessable one or pass --ignore-password-complexity",
        ),
        (
            &[
                "register-user",
                "dave",
                "-p",
                STRONG,
                "--password-file",
                password_file,
            ],
            "give the password with --password or --password-file, not both",
        ),
        (
            &["register-user", "dave"],
            "no password given and no terminal to confirm; pass --password or \
             --password-file, or --yes to create the user without a password",
        ),
        (
            &["set-password", "nobody", STRONG],
            "no user named \"nobody\"",
        ),
        (&["lock-user", "nobody"], "no user named \"nobody\""),
        (
            &["unlock-user", "nobody", "--reactivate"],
            "no user named \"nobody\"",
        ),
        (
            &["add-email", "nobody", "n@example.com"],
            "no user named \"nobody\"",
        ),
        (
            &["verify-email", "alice", "other@example.com"],
            "alice has no email address other@example.com",
        ),
        (&["kill-sessions", "nobody"], "no user named \"nobody\""),
    ];
    for (args, expected) in failures {
        assert_eq!(mas.fails(args), expected, "{args:?}");
    }
    assert_eq!(
        mas.fails(&["set-password", "alice", "abc"]),
        "the password is too weak (passwords.minimum_complexity); choose a longer, less \
         guessable one or pass --ignore-complexity"
    );

    assert_eq!(
        mas.ok(&["set-password", "alice", "another long passphrase 99"]),
        ["Set the password of alice (@alice:example.com)."]
    );

    let lines = mas.ok(&["add-email", "alice", "second@example.com"]);
    assert_eq!(
        lines[0],
        "Added the email address second@example.com to alice (@alice:example.com), verified."
    );
    assert_stays_queued(&lines[1], "provision_user", "provision-user");
    assert_eq!(
        mas.fails(&["add-email", "alice", "Second@Example.com"]),
        "alice already has the email address Second@Example.com"
    );
    assert_eq!(
        mas.ok(&["verify-email", "alice", "second@example.com"]),
        [
            "The email address second@example.com of alice (@alice:example.com) was already \
          verified; nothing changed."
        ]
    );

    assert_eq!(
        mas.ok(&["kill-sessions", "alice", "--dry-run"]),
        [
            "Would end 0 sessions of alice (@alice:example.com): 0 OAuth, 0 browser; nothing \
          changed (dry run)."
        ]
    );
    let lines = mas.ok(&["kill-sessions", "alice"]);
    assert_eq!(
        lines[0],
        "Ended 0 sessions of alice (@alice:example.com): 0 OAuth, 0 browser."
    );
    assert_stays_queued(&lines[1], "sync_devices", "sync-devices");

    let lines = mas.ok(&["lock-user", "alice"]);
    assert_eq!(
        lines[0],
        "Locked alice (@alice:example.com) and ended 0 sessions (0 OAuth, 0 browser)."
    );
    assert_stays_queued(&lines[1], "sync_devices", "sync-devices");
    let lines = mas.ok(&["unlock-user", "alice"]);
    assert_eq!(lines[0], "Unlocked alice (@alice:example.com).");
    assert_stays_queued(&lines[1], "provision_user", "provision-user");

    let lines = mas.ok(&["lock-user", "bob", "--deactivate"]);
    assert_eq!(
        lines[0],
        "Locked and deactivated bob (@bob:example.com) and ended 0 sessions (0 OAuth, 0 \
         browser)."
    );
    assert_stays_queued(&lines[1], "delete_user", "deactivate-user");
    let lines = mas.ok(&["unlock-user", "bob", "--reactivate"]);
    assert_eq!(lines[0], "Unlocked and reactivated bob (@bob:example.com).");
    assert_stays_queued(&lines[1], "reactivate_user", "reactivate-user");
}

#[test]
fn every_manage_verb_on_sqlite_leaves_jobs_queued_when_the_homeserver_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("mas.db");
    let mas = Mas::new(
        &format!("database:\n  uri: \"sqlite://{}\"\n", database.display()),
        &unreachable_matrix(),
    );
    every_verb_with_the_homeserver_down(&mas);
    // What the server's worker will retry: every job that could not run, due again soon.
    let queued = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(available_jobs(&database));
    assert!(queued.contains(&"provision-user".to_owned()), "{queued:?}");
    assert!(queued.contains(&"deactivate-user".to_owned()), "{queued:?}");
}

async fn available_jobs(database: &Path) -> Vec<String> {
    let url = format!("sqlite://{}", database.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT queue_name FROM queue_jobs WHERE status = 'available'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter().map(|row| row.get::<String, _>(0)).collect()
}

#[tokio::test]
async fn every_manage_verb_on_postgres() {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DATABASE_URL must be set in CI"
        );
        eprintln!("skipping PostgreSQL: DATABASE_URL not set");
        return;
    };
    let name = format!(
        "mas_manage_{}_{:08x}",
        std::process::id(),
        rand::rngs::OsRng.next_u32()
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let create = format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
    );
    sqlx::raw_sql(&create).execute(&mut admin).await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let database = format!("database:\n  uri: \"{url}\"\n  schema: mas\n");
    // The processes block; run them off the runtime, and drop the database even on failure.
    let outcome = tokio::task::spawn_blocking(move || {
        let mas = Mas::new(&database, &unreachable_matrix());
        every_verb_with_the_homeserver_down(&mas);
    })
    .await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::raw_sql(&drop).execute(&mut admin).await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_user_makes_the_user_exist_in_the_real_synapse() {
    let Some(python) = synapse_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Synapse venv (.venv) is missing in CI"
        );
        eprintln!("skipping real Synapse: .venv/bin/python not found (run ./start/test)");
        return;
    };
    let synapse = Synapse::start(&python).await;
    let hs = SynapseConnection::new(SERVER_NAME, synapse.endpoint(), SECRET).unwrap();
    // Known to Synapse only: MAS must not hand the name out again.
    hs.provision_user(&ProvisionRequest::new("taken"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "database:\n  uri: \"sqlite://{}\"\n",
        dir.path().join("mas.db").display()
    );
    let matrix = format!(
        "matrix:\n  homeserver: {SERVER_NAME}\n  endpoint: \"{}\"\n  secret: \"{SECRET}\"\n",
        synapse.endpoint()
    );
    let (mas, lines, failed) = tokio::task::spawn_blocking(move || {
        let mas = Mas::new(&database, &matrix);
        let lines = mas.ok(&[
            "register-user",
            "alice",
            "-p",
            STRONG,
            "-e",
            "alice@example.com",
            "-d",
            "Alice A.",
        ]);
        let failed = mas.fails(&["register-user", "taken", "-p", STRONG]);
        (mas, lines, failed)
    })
    .await
    .unwrap();
    assert_eq!(
        lines,
        [
            "Created user alice (@alice:localhost), with a password, display name \"Alice A.\", \
             email alice@example.com.",
            "Provisioned @alice:localhost in the homeserver.",
        ]
    );
    // The user exists in Synapse as soon as the command returned.
    let alice = hs.query_user("alice", CALL_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(alice.user_id, "@alice:localhost");
    assert_eq!(alice.display_name.as_deref(), Some("Alice A."));
    assert!(!alice.is_deactivated);
    assert_eq!(
        failed,
        "the username \"taken\" is not available on the homeserver"
    );

    // Registered while Synapse is unreachable: the server's worker provisions the user later.
    let (mas, lines, server) = tokio::task::spawn_blocking(move || {
        let down = mas
            .with_overlay("down.yaml", &unreachable_matrix().replace("example.com", SERVER_NAME))
            .args(["manage", "register-user", "late", "-p", STRONG])
            .output()
            .unwrap();
        let lines = text(&down.stdout);
        let port = closed_port();
        let http = format!(
            "http:\n  public_base: \"http://127.0.0.1:{port}/auth/\"\n  listeners:\n    \
             - name: web\n      prefix: /auth\n      binds: [{{address: \"127.0.0.1:{port}\"}}]\n      \
             resources: [{{name: health}}]\n"
        );
        let log = std::fs::File::create(mas.path().join("server.log")).unwrap();
        let server = mas
            .with_overlay("http.yaml", &http)
            .env("RUST_LOG", "info")
            .arg("server")
            .stdout(log)
            .spawn()
            .unwrap();
        (mas, lines, Running(server))
    })
    .await
    .unwrap();
    assert!(
        lines.contains("the provision-user job stays queued"),
        "{lines}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while hs.query_user("late", CALL_TIMEOUT).await.unwrap().is_none() {
        let log = std::fs::read_to_string(mas.path().join("server.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the server never provisioned the user:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(mas.path().join("server.log")).unwrap();
    assert!(log.contains("job completed"), "{log}");
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();

    let locked =
        tokio::task::spawn_blocking(move || mas.ok(&["lock-user", "alice", "--deactivate"]))
            .await
            .unwrap();
    assert_eq!(locked[1], "Deactivated @alice:localhost in the homeserver.");
    let alice = hs.query_user("alice", CALL_TIMEOUT).await.unwrap().unwrap();
    assert!(alice.is_deactivated);
    drop(synapse);
}
