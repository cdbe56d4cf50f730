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

pg_ensure_running() {
  local root=$1 bin pgdata sock
  pg_ensure_installed || return 1
  bin=$(pg_bindir)
  pgdata="$root/target/pg/data"
  sock="$root/target/pg/sock"
  mkdir -p "$root/target/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$root/target/pg"; fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    echo "start: creating the test PostgreSQL cluster in target/pg"
    pg_as_owner "$bin/initdb" -D "$pgdata" -U postgres --auth=trust --locale=C --encoding=UTF8 >/dev/null
  fi
  pg_as_owner mkdir -p "$sock"
  if ! pg_as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    pg_as_owner "$bin/pg_ctl" -D "$pgdata" -l "$root/target/pg/server.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1 -p $APPLIANCE_TEST_PG_PORT -k $sock -c fsync=off -c max_connections=300" >/dev/null \
      || { echo "start: the test PostgreSQL did not start; see target/pg/server.log" >&2; return 1; }
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$APPLIANCE_TEST_PG_PORT/postgres"
}
