# shellcheck shell=bash
# Sourced: the Synapse virtualenv at <repo>/.venv with the pinned matrix-synapse[postgres].
# A no-op when it already holds the pinned version; re-created when the pin changes.
# Needs common.sh and versions.sh.

# True when the venv exists, runs, and has the pinned Synapse and psycopg2 installed.
venv_is_current() {
  local venv=$1
  [ -x "$venv/bin/python" ] || return 1
  compgen -G "$venv/lib/python3*/site-packages/matrix_synapse-${SYNAPSE_VERSION}.dist-info" >/dev/null || return 1
  compgen -G "$venv/lib/python3*/site-packages/psycopg2-*.dist-info" >/dev/null || return 1
}

# Makes sure python3 with venv support, a C compiler, the Python headers and libpq's headers
# (pg_config) exist: psycopg2 builds from source.
venv_ensure_build_deps() {
  if ! command -v python3 >/dev/null; then
    apt_install python3 python3-venv python3-dev
  fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  command -v gcc >/dev/null || apt_install gcc
  if ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    apt_install python3-dev
  fi
  command -v pg_config >/dev/null || apt_install libpq-dev
}

# venv_ensure ROOT: creates or refreshes ROOT/.venv.
venv_ensure() {
  local venv=$1/.venv
  venv_is_current "$venv" && return 0
  venv_ensure_build_deps
  if [ -e "$venv" ]; then
    start_log "re-creating .venv for ${SYNAPSE_PIP_SPEC}"
    rm -rf "$venv"
  else
    start_log "creating .venv with ${SYNAPSE_PIP_SPEC} (about 30 s)"
  fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${SYNAPSE_PIP_SPEC}" \
    || start_die "pip could not install ${SYNAPSE_PIP_SPEC} into .venv"
  venv_is_current "$venv" || start_die ".venv does not hold ${SYNAPSE_PIP_SPEC} after pip install"
}
