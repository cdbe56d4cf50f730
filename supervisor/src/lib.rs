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
