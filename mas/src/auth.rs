//! The layer the areas (`oauth2`, `compat`, `views`, `cli`) share, one floor below them: what
//! two of them need, written once as plain async functions with explicit arguments (a pool or
//! connection, the clock, the RNG, the rate limiter, the homeserver), testable without HTTP.
//!
//! - [`password`]: password authentication, the whole sequence (rate limits, lookup,
//!   verify-and-upgrade, account state), for the login page and compat login;
//! - [`account`]: whether an account may log in at all (deactivated, locked, guest);
//! - [`sessions`]: ending sessions, one way for each kind (OAuth, compat, browser) and for
//!   all of a user's sessions at once;
//! - [`device`]: provisioning a device in the homeserver, with its own error that each caller
//!   maps to its protocol;
//! - [`new_password`]: choosing a new password (twice, strength) and storing its hash, for
//!   the password change page and recovery;
//! - [`email`]: proving an email address with a mailed code (registration, adding an
//!   address);
//! - [`post_auth`]: where a login continues afterwards, and the login URL that carries it.
//!
//! It owns no routes and answers in no protocol's shape: refusals are enums the callers map
//! to their page text, Matrix errcode or OAuth error.

pub(crate) mod account;
pub(crate) mod device;
pub(crate) mod email;
pub(crate) mod new_password;
pub(crate) mod password;
pub(crate) mod post_auth;
pub(crate) mod sessions;
