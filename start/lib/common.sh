# shellcheck shell=bash
# Sourced by the start/ scripts: messages, the repository root, and installing Debian packages
# only when they are missing.

# The repository root (the parent of start/).
START_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

start_log() { printf 'start: %s\n' "$*" >&2; }
start_die() {
  printf 'start: error: %s\n' "$*" >&2
  exit 1
}

# True when every named Debian package is installed.
deb_installed() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
  done
}

# Installs the named Debian packages that are not installed yet (apt-get update once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do
    deb_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || start_die "missing ${missing[*]} and no apt-get to install them"
  [ "$(id -u)" = 0 ] || start_die "missing Debian packages ${missing[*]}: run as root or install them"
  start_log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${START_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    START_APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
