//! The built-in Matrix Authentication Service.
