//! Supervision with real (tiny) shell children.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::*;

fn sh(script: &str, grace: Duration) -> ChildSpec {
    ChildSpec {
        name: "test",
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: std::env::temp_dir(),
        ready_url: None,
        grace,
    }
}

fn fast_policy() -> RestartPolicy {
    RestartPolicy {
        limit: 5,
        window: Duration::from_secs(60),
        backoff_start: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        stable_after: Duration::from_secs(60),
    }
}

struct Harness {
    cancel: CancellationToken,
    hup: Arc<Notify>,
    fatal: mpsc::Receiver<String>,
    ready: oneshot::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(spec: ChildSpec, policy: RestartPolicy) -> Harness {
    let cancel = CancellationToken::new();
    let hup = Arc::new(Notify::new());
    let (fatal_tx, fatal) = mpsc::channel(1);
    let (ready_tx, ready) = oneshot::channel();
    let task = tokio::spawn(keep_running(
        spec,
        policy,
        Channels {
            cancel: cancel.clone(),
            hup: hup.clone(),
            fatal: fatal_tx,
            ready: ready_tx,
        },
    ));
    Harness {
        cancel,
        hup,
        fatal,
        ready,
        task,
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; its state letter is Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn a_child_that_keeps_failing_is_fatal_after_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let script = format!("echo x >> {}; exit 3", log.display());
    let mut h = start(sh(&script, Duration::from_secs(1)), fast_policy());
    let reason = tokio::time::timeout(Duration::from_secs(10), h.fatal.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(reason.contains("failed 6 times"), "{reason}");
    assert!(reason.contains("exit code 3"), "{reason}");
    h.task.await.unwrap();
    let starts = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(starts, 6, "started once and restarted five times");
}

#[tokio::test]
async fn a_failed_child_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran-once");
    // Fails the first time, then stays up.
    let script = format!(
        "if [ -e {m} ]; then echo second > {m}.2; exec sleep 60; else touch {m}; exit 1; fi",
        m = marker.display()
    );
    let mut h = start(sh(&script, Duration::from_secs(1)), fast_policy());
    assert_eq!(
        wait_for_file(&dir.path().join("ran-once.2")).await.trim(),
        "second"
    );
    h.cancel.cancel();
    h.task.await.unwrap();
    assert!(h.fatal.try_recv().is_err(), "one failure is not fatal");
}

#[tokio::test]
async fn stop_sends_sigterm_to_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // A grandchild in the background, its pid recorded.
    let script = format!("sleep 60 & echo $! > {}; wait", pids.display());
    let mut h = start(sh(&script, Duration::from_secs(5)), fast_policy());
    let grandchild: i32 = wait_for_file(&pids).await.trim().parse().unwrap();
    assert!(alive(grandchild));
    let _ = (&mut h.ready).await;
    let t = Instant::now();
    h.cancel.cancel();
    h.task.await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "SIGTERM ends it without the grace"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !alive(grandchild),
        "the grandchild was stopped with its group"
    );
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "trap '' TERM; echo $$ > {}; while :; do sleep 0.05; done",
        pid_file.display()
    );
    let h = start(sh(&script, Duration::from_millis(500)), fast_policy());
    let pid: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
    let t = Instant::now();
    h.cancel.cancel();
    h.task.await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "waited the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "then killed: {took:?}");
    assert!(!alive(pid));
}

#[tokio::test]
async fn sighup_is_forwarded_to_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got-hup");
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo hup > {}' HUP; touch {}; while :; do sleep 0.05; done",
        got.display(),
        ready.display()
    );
    let h = start(sh(&script, Duration::from_secs(1)), fast_policy());
    while !ready.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.hup.notify_one();
    assert_eq!(wait_for_file(&got).await.trim(), "hup");
    h.cancel.cancel();
    h.task.await.unwrap();
}
