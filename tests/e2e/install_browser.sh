#!/usr/bin/env bash
# Installs what the end-to-end tests need and is not a Python package: headless Chromium from Debian.
# Idempotent: does nothing when /usr/bin/chromium exists. Playwright's own browser download is not
# used (it needs hosts outside the package registries); the tests drive this Chromium instead.
set -euo pipefail
CHROMIUM=${E2E_CHROMIUM:-/usr/bin/chromium}
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "Installing Chromium for the end-to-end tests (apt-get install chromium) ..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
"$CHROMIUM" --version
