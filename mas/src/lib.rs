//! The built-in Matrix Authentication Service: an OAuth 2.0 / OpenID Connect server for one
//! Matrix homeserver, compatible on the wire with upstream MAS. The binary `mas-cli` is a thin
//! wrapper around [`cli::main`].

pub mod app;
pub(crate) mod auth;
pub mod cli;
pub mod clock;
pub mod compat;
pub mod config;
pub mod crypto;
pub mod csp;
pub mod email;
pub mod error;
pub mod extract;
mod health;
pub mod homeserver;
pub mod jobs;
pub mod lifecycle;
pub mod model;
pub mod oauth2;
pub(crate) mod pages;
pub mod ratelimit;
pub mod rng;
pub mod routes;
pub mod storage;
pub mod syn2mas;
pub mod telemetry;
pub mod templates;
pub mod upstream;
pub mod views;
