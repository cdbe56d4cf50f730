//! `mas-cli`: the built-in Matrix Authentication Service's command line.

fn main() {}
