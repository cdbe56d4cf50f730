//! One child process: how it is described ([`ChildSpec`]), started (own process group, clean
//! environment, output piped and prefixed line by line), signalled and stopped (SIGTERM to the
//! group, SIGKILL after the grace). `tokio::process` reaps our children; nothing else in this
//! process calls `waitpid` (see `pid1` for the orphans of a container).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// A child process as data.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Short name, used as the log prefix (`synapse`, `mas`).
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment of the child (nothing is inherited).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Readiness probe (`None`: ready once started).
    pub ready_url: Option<http::Uri>,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
}

/// A started child.
#[derive(Debug)]
pub struct Running {
    pub name: &'static str,
    child: Child,
    pid: Pid,
}

impl ChildSpec {
    /// Starts the child in its own process group with its output prefixed on our stdout.
    pub fn spawn(&self) -> std::io::Result<Running> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that stopping it reaches its own children too.
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn()?;
        let raw = child
            .id()
            .ok_or_else(|| std::io::Error::other("child exited at once"))?;
        let pid = Pid::from_raw(i32::try_from(raw).map_err(std::io::Error::other)?);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(self.name, out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(self.name, err));
        }
        tracing::info!(child = self.name, pid = raw, "started");
        Ok(Running {
            name: self.name,
            child,
            pid,
        })
    }
}

impl Running {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `signal` to the child's process group.
    pub fn signal(&self, signal: Signal) {
        if let Err(e) = killpg(self.pid, signal) {
            tracing::debug!(child = self.name, %signal, error = %e, "signal not delivered");
        }
    }

    /// SIGTERM to the group; SIGKILL after `grace`; then waits for the exit and clears any
    /// process left in the group.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(
                    child = self.name,
                    grace_ms = grace.as_millis() as u64,
                    "did not stop in time; killing"
                );
                self.signal(Signal::SIGKILL);
                self.child.wait().await.ok()
            }
        };
        // Grandchildren that outlived their parent in the group.
        let _ = killpg(self.pid, Signal::SIGKILL);
        tracing::info!(child = self.name, status = %describe(status), "stopped");
        status
    }
}

/// `exit code N`, `killed by SIGKILL`, or `unknown`.
pub fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(sig) => format!("killed by {sig}"),
                Err(_) => format!("killed by signal {sig}"),
            },
            (None, None) => "unknown".to_owned(),
        },
        None => "unknown".to_owned(),
    }
}

/// Copies a child's output to our stdout, one line at a time, prefixed with its name.
async fn pump(name: &'static str, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{name} | {text}");
            }
        }
    }
}

/// Runs a one-shot child to completion (output prefixed), returning its exit status.
pub async fn run_once(spec: &ChildSpec) -> std::io::Result<ExitStatus> {
    let mut running = spec.spawn()?;
    running.wait().await
}
