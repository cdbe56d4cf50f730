# shellcheck shell=bash
# Sourced by start/test: makes sure a throw-away PostgreSQL server runs on loopback for the tests
# and exports DATABASE_URL (a superuser URL; tests create one fresh database each).
#
# Idempotent: installs the Debian package only when no server binaries exist, creates the
# cluster once under target/pg, and leaves a running server alone.

APPLIANCE_TEST_PG_PORT=${APPLIANCE_TEST_PG_PORT:-55432}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

pg_ensure_installed() {
  pg_bindir >/dev/null && return 0
  echo "start: installing the PostgreSQL server (Debian package postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  pg_bindir >/dev/null || { echo "start: PostgreSQL server binaries still missing after install" >&2; return 1; }
}

# Runs a PostgreSQL tool as the postgres user when we are root (the server refuses root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A directory the server's owner can reach: target/pg in the repo, unless a parent directory
# is closed to the postgres user (a clone under /root, say); then one under /var/tmp.
pg_cluster_dir() {
  local root=$1 dir=$1/target/pg
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      dir=/var/tmp/appliance-test-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)
      mkdir -p "$dir"
      chown postgres: "$dir"
    fi
  fi
  echo "$dir"
}

pg_ensure_running() {
  local root=$1 bin dir pgdata sock
  pg_ensure_installed || return 1
  bin=$(pg_bindir)
  export DATABASE_URL="postgres://postgres@127.0.0.1:$APPLIANCE_TEST_PG_PORT/postgres"
  # A server already answering on the port (this checkout's, or another one's) is good enough:
  # it is a throw-away loopback server with trust authentication either way.
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$APPLIANCE_TEST_PG_PORT" -t 2; then
    return 0
  fi
  dir=$(pg_cluster_dir "$root")
  pgdata="$dir/data"
  sock="$dir/sock"
  if [ ${#sock} -gt 90 ]; then
    # Unix socket paths are limited to 107 bytes.
    sock=/tmp/appliance-test-pg-sock-$(printf '%s' "$root" | sha256sum | cut -c1-12)
  fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    echo "start: creating the test PostgreSQL cluster in $dir"
    pg_as_owner "$bin/initdb" -D "$pgdata" -U postgres --auth=trust --locale=C --encoding=UTF8 >/dev/null
  fi
  pg_as_owner mkdir -p "$sock"
  if ! pg_as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    pg_as_owner "$bin/pg_ctl" -D "$pgdata" -l "$dir/server.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1 -p $APPLIANCE_TEST_PG_PORT -k $sock -c fsync=off -c max_connections=300" >/dev/null \
      || { echo "start: the test PostgreSQL did not start; see $dir/server.log" >&2; return 1; }
  fi
}
