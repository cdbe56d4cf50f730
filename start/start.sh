#!/bin/sh
# The container's entry point (the Dockerfile's CMD): it only execs the supervisor, which then
# runs as PID 1 (signals, reaping, privilege drop, config rendering: all in `appliance run`).
# APPLIANCE_BIN lets the Cloudron-mode test run this script against a build in target/.
exec "${APPLIANCE_BIN:-/app/code/appliance}" run "$@"
