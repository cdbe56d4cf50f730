# shellcheck shell=bash
# Sourced by start/test: the headless browser of the end-to-end suite. The OAuth tests drive the
# appliance's login and consent pages with Debian's `chromium` package through playwright-core
# (which never downloads a browser of its own). Idempotent: installs the package only when
# /usr/bin/chromium is missing. Needs common.sh.

# Where the suite expects the browser (tests/lib/browser.mjs; CHROMIUM_PATH overrides both).
APPLIANCE_CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}

chromium_ensure() {
  if [ ! -x "$APPLIANCE_CHROMIUM" ]; then
    apt_install chromium
    [ -x "$APPLIANCE_CHROMIUM" ] || start_die "chromium installed, but $APPLIANCE_CHROMIUM is missing"
  fi
  # A browser that cannot start (a missing shared library, say) fails here, once, with its own
  # message, rather than in every browser test.
  if ! "$APPLIANCE_CHROMIUM" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; then
    start_die "$APPLIANCE_CHROMIUM does not run: $("$APPLIANCE_CHROMIUM" --headless --no-sandbox --version 2>&1 | tail -n 1)"
  fi
  export CHROMIUM_PATH=$APPLIANCE_CHROMIUM
}
