#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the production-profile tests start a throwaway cluster
# with, when they are missing (Debian or Ubuntu; as root, or with password-less sudo). Called by
# tests/prod/servers.py; running it by hand is never required.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL is not installed and apt-get is not available: install PostgreSQL's server" \
    "binaries (initdb, pg_ctl) and put them on PATH" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
