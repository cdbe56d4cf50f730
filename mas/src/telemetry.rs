//! Logging: `tracing` to plain lines (the supervisor prefixes each with the service name),
//! filtered by `RUST_LOG` (default `info`). Secrets are never logged; errors are logged once,
//! where they are handled.

use std::fmt;
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output: the long-running and database commands.
    Stdout,
    /// Standard error: commands whose standard output is their result (`config dump`).
    Stderr,
}

/// Installs the global subscriber. Does nothing if one is already installed (tests).
pub fn init(target: LogTarget) {
    init_with_default(target, "info");
}

/// [`init`] with another filter than `info` when `RUST_LOG` is unset or invalid.
pub fn init_with_default(target: LogTarget, default: &str) {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Err(_) => (EnvFilter::new(default), None),
        Ok(value) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(error) => (EnvFilter::new(default), Some(error)),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match target {
        LogTarget::Stdout => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .try_init(),
        LogTarget::Stderr => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(error) = bad_filter
    {
        tracing::warn!(error = %error, "RUST_LOG is invalid; logging at info");
    }
}

/// Displays an error with its sources on one line: `outer: inner: root`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_sources_on_one_line() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&error).to_string(), "outer: inner");
    }
}
