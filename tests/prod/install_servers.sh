#!/usr/bin/env bash
# Installs the Debian servers the production-profile tests start throwaway instances of, when they
# are missing: PostgreSQL (initdb, pg_ctl) and Redis (redis-server, the Celery pool's broker).
# Debian or Ubuntu; as root, or with password-less sudo. Called by tests/prod/servers.py; running
# it by hand is never required.
set -euo pipefail
# The test workers run side by side and may each find a server missing: the first installs it
# while the others wait here, then find it installed (two apt-get at once: one fails on apt's lock).
exec 9>"${TMPDIR:-/tmp}/platform-install-servers.lock"
flock 9
missing=()
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  missing+=(redis-server)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "${missing[*]} not installed and apt-get is not available: install PostgreSQL's server" \
    "binaries (initdb, pg_ctl) and redis-server, and put them on PATH" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Another program's install (an unattended upgrade, say) holding dpkg's lock is waited for.
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
