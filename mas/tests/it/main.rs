//! Integration tests of mas-cli as a process.
