#!/usr/bin/env bash
# The dashboard's browser tests (test/ui-browser.test.ts) drive Debian's chromium with
# playwright-core; nothing downloads a browser. This installs chromium with apt-get when it
# is missing, and fails by name when it cannot.
set -euo pipefail
CHROMIUM="${FASTPORT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(uname -s)" != "Linux" ]; then
  echo "setup-browser.sh: chromium ($CHROMIUM) is missing and this is not Linux: install chromium and set FASTPORT_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "setup-browser.sh: chromium ($CHROMIUM) is missing, and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-browser.sh: chromium ($CHROMIUM) is missing and apt-get is not here: install chromium and set FASTPORT_CHROMIUM" >&2
  exit 1
fi
echo "setup-browser.sh: installing chromium with apt-get (for the dashboard's browser tests)…" >&2
export DEBIAN_FRONTEND=noninteractive
# pnpm test runs the packages' tests side by side, and native-io's setup scripts may use
# apt at the same time: take turns (flock) and wait for dpkg's own lock.
apt_get() { $SUDO flock -w 900 /var/lock/fastport-apt.lock apt-get -o DPkg::Lock::Timeout=600 "$@"; }
if ! apt_get install -y --no-install-recommends chromium >&2; then
  apt_get update >&2 && apt_get install -y --no-install-recommends chromium >&2 || {
    echo "setup-browser.sh: apt-get could not install chromium" >&2
    exit 1
  }
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "setup-browser.sh: chromium was installed but $CHROMIUM is not there" >&2
  exit 1
fi
