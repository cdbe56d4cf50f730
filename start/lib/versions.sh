# shellcheck shell=bash
# The pinned versions of what the appliance installs from package registries, in one place:
# start/ uses them for the local venv, the Dockerfile reads the same file.

# Synapse from PyPI, with the PostgreSQL driver (psycopg2, built from source) and its OIDC extra
# (Authlib): the appliance's own Synapse never signs anyone in (MAS does), but the migration tests
# run a pre-MAS Synapse with Synapse-side OIDC, as the stock Cloudron package does.
SYNAPSE_VERSION=1.163.2
SYNAPSE_PIP_SPEC="matrix-synapse[postgres,oidc]==${SYNAPSE_VERSION}"
