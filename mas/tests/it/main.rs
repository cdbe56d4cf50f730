//! Integration tests: `mas-cli` as a process, run the way the supervisor runs it; the Synapse
//! client against the real Synapse.

// `cfg(test)` marks the helpers as test code for clippy (unwrap and print are fine there).
#[cfg(test)]
mod cli;
#[cfg(test)]
mod manage;
#[cfg(test)]
mod synapse;
