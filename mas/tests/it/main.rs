//! Integration tests of `mas-cli` as a process, run the way the supervisor runs it.

// `cfg(test)` marks the helpers as test code for clippy (unwrap and print are fine there).
#[cfg(test)]
mod cli;
