//! The appliance supervisor as a library, so that its parts can be tested one by one.
//!
//! `env` parses the environment, `paths` knows the layout, `secrets` and `state` keep what must
//! persist, `appservices` checks the bridges' registration files, `render` writes the configs,
//! `database` checks PostgreSQL, `child` and `supervise` run Synapse and MAS, `router` fronts
//! them on the public port, `doctor` checks a running appliance.

pub mod appservices;
pub mod bootstrap;
pub mod child;
pub mod database;
pub mod doctor;
pub mod env;
pub mod fsutil;
pub mod migrate;
pub mod paths;
pub mod pid1;
pub mod privileges;
pub mod probe;
pub mod render;
pub mod router;
pub mod secrets;
pub mod state;
pub mod supervise;

/// Runs a future on a single-threaded runtime of its own: the supervisor's synchronous steps
/// (before privileges are dropped no threads should exist, and the migration's steps run
/// programs one after the other) call the async database and probe code through it.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime can always be built")
        .block_on(fut)
}
