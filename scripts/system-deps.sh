#!/usr/bin/env bash
# Install the system packages the test suite needs, from Debian: PostgreSQL, MariaDB and Redis
# servers (each started per test session on loopback by tests/pg.py, tests/mariadb.py,
# tests/redis_server.py, ...; never as system services), Chromium for the web console's browser tests, and a Python venv module.
# Idempotent: apt is not touched when everything is present.
set -euo pipefail
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
has mariadbd && has mariadb-install-db || need+=(mariadb-server)
has redis-server || need+=(redis-server)
has chromium || need+=(chromium)
# promtool (from the prometheus package) checks the Prometheus config and alert rules (tests/deploy)
has promtool || need+=(prometheus)
# haproxy -c checks the Compose proxy's config (tests/deploy/test_compose.py); never started
has haproxy || need+=(haproxy)
# a CJK font, so the console's 简体中文 screens render in headless Chromium (screenshots)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -eq 0 ]; then
  echo "system-deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own servers: keep the packages' postinst scripts from starting
# system-wide PostgreSQL/MariaDB/Redis services (exit 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
  >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  rm -f "$log"
  echo "system-deps: apt-get failed" >&2
  exit 1
fi
rm -f "$log"
echo "system-deps: installed ${need[*]}"
