//! [`SynapseConnection`] against the real Synapse (the pinned `matrix-synapse` in the repo's
//! `.venv`): every `/_synapse/mas` call with the status mapping of
//! docs/protocol.md#calls-to-synapse. Synapse serves that API without MAS running, so its
//! `endpoint` points at an unused port.
//!
//! Skips (with a message) when the venv is missing and `CI` is unset; fails in CI.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mas::homeserver::{
    CALL_TIMEOUT, FieldAction, HomeserverConnection, HomeserverError, ProvisionRequest,
    SynapseConnection, Upserted,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use url::Url;

pub(crate) const SECRET: &str = "test-shared-secret-1234";
pub(crate) const SERVER_NAME: &str = "localhost";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// The venv's Python (`APPLIANCE_SYNAPSE_PYTHON` overrides), `None` when it is missing.
pub(crate) fn synapse_python() -> Option<PathBuf> {
    let python = std::env::var_os("APPLIANCE_SYNAPSE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    python.exists().then_some(python)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Synapse; SIGTERM (then SIGKILL) when dropped.
pub(crate) struct Synapse {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Synapse {
    /// Starts Synapse with a minimal config (loopback listener, SQLite, the
    /// `matrix_authentication_service` section) in a temporary directory and waits for `/health`.
    pub(crate) async fn start(python: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let port = free_port();
        let unused_mas_port = free_port();
        let config = format!(
            r#"server_name: "{SERVER_NAME}"
report_stats: false
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args: {{database: "{data}/homeserver.db"}}
media_store_path: "{data}/media_store"
signing_key_path: "{data}/localhost.signing.key"
trusted_key_servers: []
background_updates:
  sleep_enabled: false
matrix_authentication_service:
  enabled: true
  endpoint: "http://127.0.0.1:{unused_mas_port}/"
  secret: "{SECRET}"
"#,
            data = data.display(),
        );
        let config_path = data.join("homeserver.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = data.join("synapse.log");
        let child = Command::new(python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .current_dir(data)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(data.join("synapse.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut synapse = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        synapse.wait_healthy().await;
        synapse
    }

    async fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("Synapse exited with {status}:\n{}", self.output());
            }
            if health(self.port).await {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "Synapse not healthy after {STARTUP_TIMEOUT:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn output(&self) -> String {
        let stderr = self.log.with_file_name("synapse.stderr");
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!("{}{}", read(&self.log), read(&stderr))
    }

    pub(crate) fn endpoint(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}/", self.port)).unwrap()
    }
}

impl Drop for Synapse {
    #[expect(
        clippy::disallowed_methods,
        reason = "Drop cannot await; a short poll while Synapse exits (35-50 ms)"
    )]
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET /health` answers 200.
async fn health(port: u16) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response.starts_with(b"HTTP/1.1 200"))
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), probe).await;
    matches!(answer, Ok(Some(true)))
}

async fn display_name(hs: &SynapseConnection, localpart: &str) -> Option<String> {
    hs.query_user(localpart, CALL_TIMEOUT)
        .await
        .unwrap()
        .unwrap()
        .display_name
}

/// Upserting proves whether the device existed: 200 if it did, 201 (and now it does) if not.
async fn existed(hs: &SynapseConnection, device_id: &str) -> bool {
    hs.upsert_device("alice", device_id, None).await.unwrap() == Upserted::Updated
}

/// `reactivate_user` answers 500 on a fresh database until Synapse's background update
/// `profiles_full_user_id_key_idx` has built the unique index its profile upsert needs (about
/// 20 s after start-up on SQLite by default; a few seconds with `background_updates.
/// sleep_enabled: false`, as configured here). The error is transient; the job queue retries
/// it, and so does this test.
async fn reactivate_when_ready(hs: &SynapseConnection, localpart: &str) {
    let started = Instant::now();
    loop {
        match hs.reactivate_user(localpart).await {
            Ok(()) => return,
            Err(error) if error.is_transient() && started.elapsed() < STARTUP_TIMEOUT => {
                assert!(
                    matches!(error, HomeserverError::Status { status: 500, .. }),
                    "{error}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("reactivate_user: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_the_real_synapse_mas_api() {
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

    // provision_user: 201 created, then 200 updated.
    let alice = ProvisionRequest {
        display_name: FieldAction::Set("Alice".to_owned()),
        emails: FieldAction::Set(vec!["alice@example.com".to_owned()]),
        ..ProvisionRequest::new("alice")
    };
    assert_eq!(hs.provision_user(&alice).await.unwrap(), Upserted::Created);
    let rename = ProvisionRequest {
        display_name: FieldAction::Set("Alice A.".to_owned()),
        emails: FieldAction::Unset,
        locked: Some(false),
        ..ProvisionRequest::new("alice")
    };
    assert_eq!(hs.provision_user(&rename).await.unwrap(), Upserted::Updated);

    // query_user.
    let user = hs.query_user("alice", CALL_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(user.user_id, "@alice:localhost");
    assert_eq!(user.display_name.as_deref(), Some("Alice A."));
    assert_eq!(user.avatar_url, None);
    assert!(!user.is_suspended && !user.is_deactivated);
    assert_eq!(hs.query_user("nobody", CALL_TIMEOUT).await.unwrap(), None);
    // Without a display name, Synapse uses the localpart.
    let bob = ProvisionRequest::new("bob");
    assert_eq!(hs.provision_user(&bob).await.unwrap(), Upserted::Created);
    assert_eq!(display_name(&hs, "bob").await.as_deref(), Some("bob"));

    // is_localpart_available: free, taken, invalid, and not asked for non-ASCII.
    assert!(hs.is_localpart_available("carol").await.unwrap());
    // Synapse would answer 400 M_UNKNOWN ("must be ascii") to "caröl"; the client never asks.
    let too_long = "a".repeat(256);
    let unavailable = [
        "alice", "Carol", "_carol", "12345", "car ol", "", &too_long, "caröl",
    ];
    for unavailable in unavailable {
        assert!(
            !hs.is_localpart_available(unavailable).await.unwrap(),
            "{unavailable:?} should be unavailable"
        );
    }

    // upsert_device: 201, then 200; 404 for an unknown user.
    let created = hs
        .upsert_device("alice", "ALICEDEV", Some("Alice phone"))
        .await;
    assert_eq!(created.unwrap(), Upserted::Created);
    let updated = hs
        .upsert_device("alice", "ALICEDEV", Some("Alice phone 2"))
        .await;
    assert_eq!(updated.unwrap(), Upserted::Updated);
    let error = hs.upsert_device("nobody", "X", None).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.errcode(), Some("M_NOT_FOUND"));

    // update_device_display_name: 200; 404 for an unknown device.
    hs.update_device_display_name("alice", "ALICEDEV", "Tablet")
        .await
        .unwrap();
    let error = hs
        .update_device_display_name("alice", "NOSUCHDEV", "x")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");

    // delete_device: 204, and again for a device that is gone.
    hs.delete_device("alice", "ALICEDEV").await.unwrap();
    hs.delete_device("alice", "ALICEDEV").await.unwrap();
    assert!(!existed(&hs, "ALICEDEV").await, "the device was deleted");

    // sync_devices: creates the missing, deletes the rest.
    let wanted: BTreeSet<String> = ["DEVONE".to_owned(), "DEVTWO".to_owned()].into();
    hs.sync_devices("alice", &wanted).await.unwrap();
    assert!(existed(&hs, "DEVONE").await && existed(&hs, "DEVTWO").await);
    let only_one: BTreeSet<String> = ["DEVONE".to_owned()].into();
    hs.sync_devices("alice", &only_one).await.unwrap();
    assert!(existed(&hs, "DEVONE").await);
    assert!(!existed(&hs, "DEVTWO").await, "sync deleted DEVTWO");
    assert!(!existed(&hs, "ALICEDEV").await, "sync deleted ALICEDEV");

    // set_displayname / unset_displayname.
    hs.set_displayname("alice", "Alice B.").await.unwrap();
    assert_eq!(
        display_name(&hs, "alice").await.as_deref(),
        Some("Alice B.")
    );
    hs.unset_displayname("alice").await.unwrap();
    assert_eq!(display_name(&hs, "alice").await, None);

    // allow_cross_signing_reset (a no-op without a key), delete_user, reactivate_user.
    hs.allow_cross_signing_reset("alice").await.unwrap();
    hs.delete_user("bob", false).await.unwrap();
    let bob = hs.query_user("bob", CALL_TIMEOUT).await.unwrap().unwrap();
    assert!(bob.is_deactivated);
    reactivate_when_ready(&hs, "bob").await;
    let bob = hs.query_user("bob", CALL_TIMEOUT).await.unwrap().unwrap();
    assert!(!bob.is_deactivated);
    let error = hs.delete_user("nobody", true).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");

    // A wrong secret: 403 M_UNKNOWN, never a success.
    let intruder = SynapseConnection::new(SERVER_NAME, synapse.endpoint(), "wrong").unwrap();
    let error = intruder
        .query_user("alice", CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, HomeserverError::Status { status: 403, .. }),
        "{error}"
    );
    assert_eq!(error.errcode(), Some("M_UNKNOWN"));
    drop(synapse);
}
