#!/usr/bin/env bash
# The dev PBX: a Kamailio on loopback as the firms' PBX, so the softphone can be tried
# without a UCM6301. `make run` starts it with the app; `make dev-pbx` runs it alone.
# SIP over ws://127.0.0.1:8088 (what the demo firms use: no certificate needed from an
# http://localhost page) and wss://127.0.0.1:8089 (self-signed), plus udp/tcp
# 127.0.0.1:5060 for sipp and desk phones; digest auth for every extension of the firms
# whose PBX host is 127.0.0.1 / localhost / ::1, each firm in its own SIP domain.
#
# Runs in the foreground; Ctrl-C stops it. Runtime files (cert, HA1 credentials, logs) go to
# .dev-pbx/ (git-ignored). Restart it (or `make run`) after adding or changing extensions.
#   DEV_PBX_DIR=...   runtime directory      DEV_PBX_NO_TLS=1   ws only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${DEV_PBX_DIR:-$ROOT/.dev-pbx}
PY=${PYTHON:-$ROOT/.venv/bin/python}

command -v kamailio >/dev/null || {
  echo "dev-pbx: kamailio is not installed (Debian: sudo apt-get install kamailio kamailio-websocket-modules kamailio-tls-modules)" >&2
  exit 1
}
if ! command -v openssl >/dev/null || ! ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1; then
  # ws:// is all the demo needs; wss:// only with the TLS module and a certificate.
  DEV_PBX_NO_TLS=1
fi
mkdir -p "$DIR"
chmod 700 "$DIR"
cp dev/kamailio/kamailio.cfg "$DIR/kamailio.cfg"
"$PY" dev/kamailio/credentials.py "$DIR/credentials.cfg"

args=(-DD -E -f "$DIR/kamailio.cfg" -Y "$DIR" -P "$DIR/kamailio.pid" -m 64 -M 8
      -A "CTLSOCK=\"unix:$DIR/kamailio.ctl\"")
if [ -z "${DEV_PBX_NO_TLS:-}" ]; then
  bash dev/kamailio/make_cert.sh "$DIR"
  sed "s#@DIR@#$DIR#g" dev/kamailio/tls.cfg.in > "$DIR/tls.cfg"
  args+=(-A WITH_TLS -A "TLSCFG=\"$DIR/tls.cfg\"")
  echo "dev-pbx: wss://127.0.0.1:8089 has a self-signed certificate (only for a firm set to wss; the demo firms use ws)" >&2
fi
echo "dev-pbx: ws://127.0.0.1:8088  udp/tcp 127.0.0.1:5060   (kamcmd -s unix:$DIR/kamailio.ctl ul.dump)" >&2
exec kamailio "${args[@]}"
