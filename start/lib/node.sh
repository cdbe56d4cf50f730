# shellcheck shell=bash
# Sourced: Node.js and the end-to-end suite's npm packages (tests/package.json with its committed
# package-lock.json). `npm ci` runs only when node_modules is missing or older than the lock file.
# Needs common.sh.

node_ensure() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || start_die "Node.js $major is too old for the end-to-end suite (need 20 or newer)"
}

# node_ensure_packages DIR: installs DIR/node_modules from DIR/package-lock.json when stale.
node_ensure_packages() {
  local dir=$1 sum stamp
  stamp=$dir/node_modules/.appliance-lock.sha256
  sum=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    return 0
  fi
  start_log "installing the end-to-end suite's npm packages (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || start_die "npm ci failed in $dir"
  printf '%s\n' "$sum" >"$stamp"
}
