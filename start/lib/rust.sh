# shellcheck shell=bash
# Sourced: the Rust tools the test run needs. The toolchain itself (rust-toolchain.toml, with
# rustfmt and clippy) comes from rustup; cargo-nextest installs from crates.io when missing.
# Needs common.sh.

rust_ensure() {
  command -v cargo >/dev/null || start_die "cargo not found: install Rust with rustup first"
  cargo fmt --version >/dev/null 2>&1 || start_die "rustfmt missing for the pinned toolchain (rustup component add rustfmt)"
  cargo clippy --version >/dev/null 2>&1 || start_die "clippy missing for the pinned toolchain (rustup component add clippy)"
  if ! cargo nextest --version >/dev/null 2>&1; then
    start_log "installing cargo-nextest from crates.io"
    cargo install --locked --quiet cargo-nextest || start_die "could not install cargo-nextest"
  fi
}
