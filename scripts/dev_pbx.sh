#!/usr/bin/env bash
# The dev PBX, i.e. the PBX lab (dev/pbx_lab/lab.py says what it is and how it mimics the
# firm's UCM6301): Kamailio on loopback as the firms' PBX, rtpengine relaying and
# recording every call's media, a trunk on udp 127.0.0.1:5080 (a call to a firm's DID rings
# its ring group; agents' calls to outside numbers leave there) and an outside phone on
# udp 127.0.0.1:5090 that answers them. `make run` starts it with the app; `make dev-pbx`
# runs it alone.
# SIP over ws://127.0.0.1:8088 (what the demo firms use: no certificate needed from an
# http://localhost page) and wss://127.0.0.1:8089 (self-signed), plus udp/tcp
# 127.0.0.1:5060 for sipp and desk phones; digest auth for every extension of the firms
# whose PBX host is 127.0.0.1 / localhost / ::1, each firm in its own SIP domain.
#
# Runs in the foreground; Ctrl-C stops it (rtpengine and the outside phone are in its process
# group). Runtime files (cert, HA1 credentials, accounting.sqlite, recordings, logs) go to
# .dev-pbx/ (git-ignored). Restart it (or `make run`) after adding or changing extensions.
#   DEV_PBX_DIR=...   runtime directory      DEV_PBX_NO_TLS=1   ws only
#   DEV_PBX_RING_SECONDS=20   ring group time   DEV_PBX_OUTSIDE_PHONE=off   no answering outside phone
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${DEV_PBX_DIR:-$ROOT/.dev-pbx}
PY=${PYTHON:-$ROOT/.venv/bin/python}

command -v kamailio >/dev/null || {
  echo "dev-pbx: kamailio is not installed (Debian: sudo apt-get install kamailio kamailio-websocket-modules kamailio-tls-modules kamailio-sqlite-modules rtpengine-daemon baresip sox)" >&2
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
rm -f "$DIR/lab.cfg"
if ls /usr/lib/*/kamailio/modules/db_sqlite.so >/dev/null 2>&1 && command -v sox >/dev/null; then
  "$PY" dev/pbx_lab/lab.py prepare "$DIR"
else
  echo "dev-pbx: no call accounting, media relay or recordings (install kamailio-sqlite-modules rtpengine-daemon baresip sox)" >&2
fi

if command -v rtpengine >/dev/null && grep -q WITH_MEDIA "$DIR/lab.cfg" 2>/dev/null; then
  # A previous run's rtpengine (killed with its Kamailio) would hold the control port.
  if [ -s "$DIR/rtpengine.pid" ] && kill -0 "$(cat "$DIR/rtpengine.pid")" 2>/dev/null \
     && grep -q rtpengine "/proc/$(cat "$DIR/rtpengine.pid")/cmdline" 2>/dev/null; then
    kill "$(cat "$DIR/rtpengine.pid")" 2>/dev/null || true
    sleep 0.3
  fi
  # Userspace only (--table=-1): no kernel module. --delete-delay=0 closes a call's
  # recording as soon as the call ends. rtpengine 10.5 may segfault while exiting with a
  # recorded call still up (recording_finish at shutdown): no core file in the checkout.
  ulimit -c 0
  rtpengine --config-file=none -f -E --table=-1 --dtls-passive --interface=127.0.0.1 --listen-ng=127.0.0.1:2223 \
    --port-min=30000 --port-max=30999 --recording-dir="$DIR/spool" --recording-method=pcap \
    --recording-format=raw --delete-delay=0 --log-level="${DEV_PBX_RTPENGINE_LOG_LEVEL:-5}" --pidfile="$DIR/rtpengine.pid" \
    >"$DIR/rtpengine.log" 2>&1 &
  echo "dev-pbx: rtpengine relays and records every call (recordings: $DIR/spool/pcaps, log: $DIR/rtpengine.log)" >&2
fi
if [ "${DEV_PBX_OUTSIDE_PHONE:-on}" != off ] && command -v baresip >/dev/null && [ -e "$DIR/lab.cfg" ]; then
  "$PY" dev/pbx_lab/outside_phone.py "$DIR" >"$DIR/outside-phone.log" 2>&1 &
  echo "dev-pbx: the outside phone on udp 127.0.0.1:5090 answers every call to an outside number" >&2
fi

args=(-DD -E -f "$DIR/kamailio.cfg" -Y "$DIR" -P "$DIR/kamailio.pid" -m 64 -M 8
      -A "CTLSOCK=\"unix:$DIR/kamailio.ctl\"")
if [ -z "${DEV_PBX_NO_TLS:-}" ]; then
  bash dev/kamailio/make_cert.sh "$DIR"
  sed "s#@DIR@#$DIR#g" dev/kamailio/tls.cfg.in > "$DIR/tls.cfg"
  args+=(-A WITH_TLS -A "TLSCFG=\"$DIR/tls.cfg\"")
  echo "dev-pbx: wss://127.0.0.1:8089 has a self-signed certificate (only for a firm set to wss; the demo firms use ws)" >&2
fi
echo "dev-pbx: ws://127.0.0.1:8088  udp/tcp 127.0.0.1:5060  trunk udp 127.0.0.1:5080   (kamcmd -s unix:$DIR/kamailio.ctl ul.dump)" >&2
exec kamailio "${args[@]}"
