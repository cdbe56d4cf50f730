# shellcheck shell=bash
# Sourced: the Synapse virtualenv with the pinned matrix-synapse[postgres,oidc], at <repo>/.venv for
# the tests and local runs (venv_ensure ROOT) or at any path, e.g. /app/code/venv in the image
# (venv_ensure_at DIR). A no-op when it already holds the pinned version on the right base
# interpreter; re-created when the pin or the base interpreter changes.
#
# The base interpreter is the system's /usr/bin/python3 when it exists (Debian's Python, the one
# the image uses too), so that the venv works for every user: a venv on a Python under
# /root/.pyenv (mode 0700) cannot run once the supervisor dropped privileges to `cloudron`.
# Needs common.sh and versions.sh.

# The interpreter venvs are made from.
venv_base_python() {
  if [ -x /usr/bin/python3 ]; then
    echo /usr/bin/python3
  else
    command -v python3
  fi
}

# True when the venv exists, runs, sits on the expected base interpreter, and has the pinned
# Synapse, psycopg2 and Authlib (the `oidc` extra) installed.
venv_is_current() {
  local venv=$1 base
  base=$(venv_base_python) || return 1
  [ -x "$venv/bin/python" ] || return 1
  grep -qxF "home = $(dirname "$base")" "$venv/pyvenv.cfg" 2>/dev/null || return 1
  compgen -G "$venv/lib/python3*/site-packages/matrix_synapse-${SYNAPSE_VERSION}.dist-info" >/dev/null || return 1
  compgen -G "$venv/lib/python3*/site-packages/psycopg2-*.dist-info" >/dev/null || return 1
  "$venv/bin/python" -c 'import synapse, psycopg2, authlib' 2>/dev/null || return 1
}

# Makes sure python3 with venv support, a C compiler, the Python headers and libpq's headers
# (pg_config) exist: psycopg2 builds from source.
venv_ensure_build_deps() {
  local base
  if ! base=$(venv_base_python) || [ -z "$base" ]; then
    apt_install python3 python3-venv python3-dev
    base=$(venv_base_python)
  fi
  if ! "$base" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  command -v gcc >/dev/null || apt_install gcc
  if ! "$base" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    apt_install python3-dev
  fi
  command -v pg_config >/dev/null || apt_install libpq-dev
}

# venv_ensure_at DIR: creates or refreshes the venv at DIR. A new venv is built next to DIR and
# renamed into place, so a venv in use is replaced in one step, never half-built.
venv_ensure_at() {
  local venv=$1 base tmp old
  venv_is_current "$venv" && return 0
  venv_ensure_build_deps
  base=$(venv_base_python)
  if [ -e "$venv" ]; then
    start_log "re-creating $venv for ${SYNAPSE_PIP_SPEC} on $base"
  else
    start_log "creating $venv with ${SYNAPSE_PIP_SPEC} on $base (about a minute)"
  fi
  tmp="$venv.new.$$"
  old="$venv.old.$$"
  rm -rf "$tmp"
  "$base" -m venv "$tmp" || start_die "$base -m venv failed"
  "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${SYNAPSE_PIP_SPEC}" \
    || { rm -rf "$tmp"; start_die "pip could not install ${SYNAPSE_PIP_SPEC}"; }
  # Scripts and activate files name the directory they were built in.
  grep -rlF "$tmp" "$tmp/bin" "$tmp/pyvenv.cfg" 2>/dev/null | xargs -r sed -i "s|$tmp|$venv|g"
  chmod -R go+rX "$tmp"
  if [ -e "$venv" ]; then
    mv "$venv" "$old"
  fi
  mv "$tmp" "$venv"
  rm -rf "$old"
  venv_is_current "$venv" || start_die "$venv does not hold ${SYNAPSE_PIP_SPEC} after pip install"
}

# venv_ensure ROOT: creates or refreshes ROOT/.venv.
venv_ensure() {
  venv_ensure_at "$1/.venv"
}
