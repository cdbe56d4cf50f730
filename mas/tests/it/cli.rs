//! `mas-cli` as a process: `config check`, `config generate`, `database migrate`, `server`,
//! a health probe over real HTTP, and a graceful stop on SIGTERM.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const MAS_CLI: &str = env!("CARGO_BIN_EXE_mas-cli");

fn mas_cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(MAS_CLI)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// A free loopback port (released again, so the server can take it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `path` over plain HTTP/1.1; `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Kills the child if the test ends before it exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn config_check_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "http:\n  public_base: \"http://localhost:8000/auth\"\n\
               matrix:\n  secret_file: /nonexistent/secret\n";
    let file = write(dir.path(), "bad.yaml", bad);
    let output = mas_cli(
        dir.path(),
        &["-c", file.to_str().unwrap(), "config", "check"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("http.public_base: must end with a slash"),
        "{stdout}"
    );
    assert!(
        stdout.contains("matrix.secret_file: cannot read /nonexistent/secret"),
        "{stdout}"
    );
}

#[test]
fn unknown_key_is_one_error_line_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        "http:\n  listeners:\n    - binds: [{adress: x}]\n",
    );
    let output = mas_cli(
        dir.path(),
        &["-c", file.to_str().unwrap(), "config", "check"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("http.listeners[0].binds[0]"), "{stderr}");
}

#[test]
fn generated_config_passes_check_and_dump_redacts_it() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate", "-o", "mas.yaml"]);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let check = mas_cli(dir.path(), &["-c", "mas.yaml", "config", "check"]);
    assert_eq!(text(&check.stdout), "config OK\n");
    assert!(check.status.success());
    let dump = mas_cli(dir.path(), &["-c", "mas.yaml", "config", "dump"]);
    assert!(dump.status.success());
    assert!(!text(&dump.stdout).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn migrate_then_serve_health_until_sigterm_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate", "-o", "base.yaml"]);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let port = free_port();
    let database = dir.path().join("data").join("mas.db");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let overlay = format!(
        "http:\n  public_base: \"http://127.0.0.1:{port}/auth/\"\n  listeners:\n    \
         - name: web\n      prefix: /auth\n      binds: [{{address: \"127.0.0.1:{port}\"}}]\n      \
         resources: [{{name: discovery}}, {{name: health}}]\n\
         database:\n  uri: \"sqlite://{}\"\n\
         templates:\n  path: \"{}\"\n",
        database.display(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/mas"),
    );
    write(dir.path(), "overlay.yaml", &overlay);
    let config = ["-c", "base.yaml", "-c", "overlay.yaml"];
    let with = |verb: &[&'static str]| [&config[..], verb].concat();

    let refused = mas_cli(dir.path(), &with(&["server"]));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("pending migrations; run `mas-cli database migrate`"),
        "{stderr}"
    );

    let migrated = mas_cli(dir.path(), &with(&["database", "migrate"]));
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    assert!(database.exists());

    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(MAS_CLI)
        .args(with(&["server"]))
        .current_dir(dir.path())
        .stdout(Stdio::from(log))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);

    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(answer) = http_get(port, "/auth/health") {
            break answer;
        }
        assert!(Instant::now() < deadline, "mas-cli server never answered");
        assert!(
            matches!(server.0.try_wait(), Ok(None)),
            "mas-cli server exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health, (200, "ok".to_owned()));
    assert_eq!(
        http_get(port, "/auth/nope").map(|(status, _)| status),
        Some(404)
    );

    // The supervisor forwards SIGHUP on reload: the server must survive it.
    let pid = Pid::from_raw(i32::try_from(server.0.id()).unwrap());
    kill(pid, Signal::SIGHUP).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(server.0.try_wait(), Ok(None)),
        "SIGHUP stopped the server"
    );
    assert_eq!(
        http_get(port, "/auth/health").map(|(status, _)| status),
        Some(200)
    );

    kill(pid, Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mas-cli server ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("listening"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}
