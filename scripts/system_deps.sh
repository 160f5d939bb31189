#!/usr/bin/env bash
# Debian packages the end-to-end tests need: Chromium (the browser tests), Kamailio with
# WebSocket/TLS/SQLite modules, rtpengine, baresip and sox (the PBX lab, which `make run`
# also starts: dev/pbx_lab/lab.py) and sipp; and wrk, the HTTP load generator of
# bench/bench_api.py (`make bench` runs this script too). Installed
# when missing and we are root; otherwise say how. The tests that need them skip themselves
# saying what is missing, except on CI (CI=true), where they fail.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so ] || ls /usr/lib/*/kamailio/modules/websocket.so >/dev/null 2>&1 || need+=(kamailio-websocket-modules)
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need+=(kamailio-tls-modules)
ls /usr/lib/*/kamailio/modules/db_sqlite.so >/dev/null 2>&1 || need+=(kamailio-sqlite-modules)
command -v rtpengine >/dev/null 2>&1 || need+=(rtpengine-daemon)
command -v baresip >/dev/null 2>&1 || need+=(baresip)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The production topology (make run-prod) and its test: Caddy and Redis.
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The REST benchmark's load (bench/bench_api.py --client wrk): C, so it costs the server's cores little.
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian packages for the end-to-end tests and benchmarks: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null 2>&1 || true
  # policy-rc.d keeps package scripts from starting a system Kamailio on port 5060 (or rtpengine, Caddy on 80/443, Redis).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/watheeq-apt.log 2>&1 || {
    echo "apt-get install failed (see /tmp/watheeq-apt.log); the browser/SIP end-to-end tests will skip (fail on CI)"; }
  rm -f /usr/sbin/policy-rc.d
else
  echo "Missing for the end-to-end tests: ${need[*]}"
  echo "Install them with: sudo apt-get install ${need[*]}"
  echo "Until then the browser and SIP end-to-end tests skip themselves (each names what it needs); with CI=true they fail."
fi
exit 0
