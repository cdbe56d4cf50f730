//! The appliance supervisor as a library, so that its parts can be tested one by one.

pub mod probe;
pub mod router;
