#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are here for the browser tests (tests/browser): Debian's `chromium`
# and `chromium-driver` packages. Installs them with apt-get where this runs as root on Debian or Ubuntu; elsewhere
# says what to install, and the browser tests skip with that message. Never fails the build by itself.
set -uo pipefail

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have; then
  echo "browser tests: $(/usr/bin/chromium --version 2>/dev/null | head -n1), $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
  exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing chromium and chromium-driver for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if have; then
  echo "browser tests: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  echo "browser tests will be skipped: install Debian's chromium and chromium-driver packages (needs root and apt-get)" >&2
fi
exit 0
