# shellcheck shell=bash
# Sourced: the QR-login test client (tests/qr-client, a standalone matrix-sdk project that
# tests/e2e/qr-login.suite.mjs drives), built once and cached by content.
#
# qr_client_ensure exports APPLIANCE_QR_CLIENT=<cache>/bin/qr-client-<hash>, where <hash> is the
# sha256 of the toolchain's version and of tests/qr-client's Cargo.toml, Cargo.lock and src/.
# When that file exists nothing is built (a second run costs a hash); otherwise
# `cargo build --profile e2e --locked` (unoptimised, no debug info: a third of the CPU time of
# `--release`, see the client's Cargo.toml) runs into <cache>/target (kept between runs, so a
# change of the client's code rebuilds only the client) and the binary is copied there. <cache> is
# ${XDG_CACHE_HOME:-~/.cache}/appliance/qr-client. Cargo's own settings (CARGO_HOME, the
# registry) are left as they are; a fresh machine needs only crates.io. On failure it logs the
# build's tail, leaves APPLIANCE_QR_CLIENT unset (the QR-login tests then fail saying so) and
# returns non-zero. Needs common.sh; run from the repository root (rust-toolchain.toml).

qr_client_cache_dir() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/appliance/qr-client"
}

# The content hash: toolchain, manifest, lock file, and every source file (path and content).
qr_client_hash() {
  local dir=$START_ROOT/tests/qr-client
  {
    rustc -V
    (cd "$dir" && find Cargo.toml Cargo.lock src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

qr_client_ensure() {
  unset APPLIANCE_QR_CLIENT
  local cache hash bin log
  cache=$(qr_client_cache_dir)
  hash=$(qr_client_hash) || {
    start_log "qr-client: cannot hash tests/qr-client"
    return 1
  }
  bin=$cache/bin/qr-client-$hash
  if [ ! -x "$bin" ]; then
    mkdir -p "$cache/bin"
    log=$cache/build.log
    start_log "building the QR-login test client (matrix-sdk; a few minutes the first time; log: $log)"
    if ! cargo build --profile e2e --locked --quiet \
      --manifest-path "$START_ROOT/tests/qr-client/Cargo.toml" \
      --target-dir "$cache/target" >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      start_log "qr-client: build failed (full log: $log)"
      return 1
    fi
    # Copy, then rename: a half-written file never carries the final name.
    cp "$cache/target/e2e/qr-client" "$bin.tmp" && mv "$bin.tmp" "$bin" || return 1
    # Binaries of older sources are not needed any more.
    find "$cache/bin" -maxdepth 1 -name 'qr-client-*' ! -name "qr-client-$hash" -delete
  fi
  export APPLIANCE_QR_CLIENT=$bin
}
