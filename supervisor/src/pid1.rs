//! The PID 1 shim (the pid1-rs shape; docs/architecture.md#start-restart-and-stop). As PID 1 in a
//! container, the appliance re-executes itself as a child and does only two things: forwards
//! signals to that child, and reaps every process that gets re-parented to it. The real supervisor
//! (the child) lets `tokio::process` reap its own children, so exactly one piece of code calls
//! `waitpid` in each process.

use std::process::Command;

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Clears the signal mask this thread inherited (the shim's blocked set survives `exec`).
/// Call before any other thread exists, so that every thread and child starts unblocked.
pub fn unblock_signals() {
    let _ = SigSet::all().thread_unblock();
}

/// Whether this process is PID 1.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Runs the shim: starts this same program with the same arguments and returns its exit code
/// once it has ended. Must be called before any other thread exists.
pub fn run() -> i32 {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    // Blocked here and taken with sigwait. The child inherits this mask and clears it at once
    // (`unblock_signals` in main).
    if let Err(e) = set.thread_block() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find our own executable: {e}")),
    };
    let child = match Command::new(exe).args(std::env::args_os().skip(1)).spawn() {
        Ok(child) => child,
        Err(e) => return fail(&format!("cannot start the supervisor: {e}")),
    };
    let child = Pid::from_raw(child.id() as i32);
    loop {
        let Ok(sig) = set.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        // Reap everything that has exited; return when the supervisor itself has.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn fail(message: &str) -> i32 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "appliance: {message}");
    1
}
