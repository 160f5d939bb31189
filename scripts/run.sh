#!/usr/bin/env bash
# The run command: set up, seed a demo firm on first run, then serve the dashboard
# (UI :3000, backend and REST API :8000), the WhatsApp sidecar, the PBX call-record
# reconciler and, when Kamailio is
# installed, the dev PBX the demo firm's softphones register with (ws://127.0.0.1:8088),
# until Ctrl-C.
#
# Environment (all optional):
#   WATHEEQ_FRONTEND_PORT / WATHEEQ_BACKEND_PORT   default 3000 / 8000
#   WATHEEQ_RUN_ENV    prod (default: optimised build, what the performance figures measure)
#                      or dev (hot reload while editing the UI)
#   WATHEEQ_DEV_PBX    off: do not start the dev PBX (it holds 127.0.0.1:5060/8088/8089);
#                      DEV_PBX_DIR: its runtime folder (default .dev-pbx/)
#   WATHEEQ_DATABASE_URL, WATHEEQ_WHATSAPP_GATEWAY, REDIS_URL   see README.md
set -euo pipefail
cd "$(dirname "$0")/.."
# Files the app writes (the SQLite database, Reflex's server-side state, exports, WhatsApp
# device stores) are for the service user only.
umask 077

bash scripts/setup.sh

export PATH="$PWD/.tools/node_modules/.bin:$PATH"
# Reflex's own bun installer downloads a binary from outside the package registries;
# use the bun that setup.sh installed from npm.
export REFLEX_USE_SYSTEM_BUN=1
export REFLEX_CHECK_LATEST_VERSION=0
# Without this Reflex probes several registries to pick the fastest; use the one npm is configured with.
if [ -z "${NPM_CONFIG_REGISTRY:-}" ]; then
  NPM_CONFIG_REGISTRY="$(npm config get registry)"
  export NPM_CONFIG_REGISTRY
fi

.venv/bin/python -m services.cli seed-demo --if-empty

frontend_port=${WATHEEQ_FRONTEND_PORT:-3000}
backend_port=${WATHEEQ_BACKEND_PORT:-8000}
run_env=${WATHEEQ_RUN_ENV:-prod}

pids=()    # everything to stop on exit
serving=() # the app itself: when one of these stops, everything stops
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap - INT TERM EXIT
  echo "==> stopping"
  for pid in "${pids[@]}"; do
    # Each child leads its own process group (setsid): this reaches bun, vite and granian too.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# The dev PBX (scripts/dev_pbx.sh) as the demo firm's phone system. It is not part of the
# app: when it cannot start (ports taken, packages missing) the app still runs, and the
# softphone says the PBX is not reachable.
pbx_dir=${DEV_PBX_DIR:-$PWD/.dev-pbx}
if [ "${WATHEEQ_DEV_PBX:-on}" = off ] || [ "${WATHEEQ_ENV:-}" = production ]; then
  echo "==> dev PBX not started (WATHEEQ_DEV_PBX=off or production)"
elif ! command -v kamailio >/dev/null 2>&1 || ! ls /usr/lib/*/kamailio/modules/websocket.so >/dev/null 2>&1; then
  echo "==> dev PBX not started: Kamailio is not installed, so the demo softphones cannot register."
  echo "    Install it with: sudo apt-get install kamailio kamailio-websocket-modules kamailio-tls-modules"
  echo "    (or: sudo bash scripts/system_deps.sh), then run this command again."
else
  mkdir -p "$pbx_dir"
  echo "==> starting the dev PBX (the PBX lab): ws://127.0.0.1:8088, trunk udp 127.0.0.1:5080 (log: $pbx_dir/kamailio.log)"
  DEV_PBX_DIR="$pbx_dir" setsid bash scripts/dev_pbx.sh >"$pbx_dir/kamailio.log" 2>&1 &
  pbx_pid=$!
  pids+=("$pbx_pid")
  # The app keeps the lab's "do not disturb" table equal to the agents who are Away (dev/kamailio/dnd.py).
  export WATHEEQ_DEV_PBX_CTL="unix:$pbx_dir/kamailio.ctl"
  # Say so at once if it could not start (a port taken by another `make dev-pbx`, say).
  (sleep 3; kill -0 "$pbx_pid" 2>/dev/null || { echo "==> the dev PBX stopped; the softphones cannot register. Last lines of $pbx_dir/kamailio.log:"; tail -n 5 "$pbx_dir/kamailio.log"; }) &
fi

echo "==> starting the dashboard ($run_env): http://localhost:$frontend_port (API http://localhost:$backend_port/api/v1)"
if [ "$run_env" = dev ]; then
  setsid .venv/bin/reflex run --env dev --frontend-port "$frontend_port" --backend-port "$backend_port" &
  pids+=($!); serving+=($!)
else
  # A production Reflex process serves one port; run the backend (websocket, REST API,
  # exports) and the built frontend as two, the frontend pointed at the backend's port.
  export REFLEX_API_URL="${REFLEX_API_URL:-http://localhost:$backend_port}"
  # scripts/serve_app.py: Reflex's own command, the hashed built files served as cacheable.
  setsid .venv/bin/python scripts/serve_app.py run --env prod --frontend-only --frontend-port "$frontend_port" &
  frontend_pid=$!
  pids+=("$frontend_pid"); serving+=("$frontend_pid")
  # Both Reflex processes clear the state folder on start: start the backend once the
  # frontend has been built and serves, so they never race on it.
  until (exec 3<>"/dev/tcp/127.0.0.1/$frontend_port") 2>/dev/null; do
    kill -0 "$frontend_pid" 2>/dev/null || { echo "the frontend failed to start" >&2; exit 1; }
    sleep 1
  done
  # bun re-indents package.json when it adds a package; Reflex has copied it back by now.
  .venv/bin/python scripts/frontend_lock.py "$PWD"
  setsid .venv/bin/reflex run --env prod --backend-only --backend-port "$backend_port" &
  pids+=($!); serving+=($!)
fi

echo "==> starting the WhatsApp sidecar (gateway: ${WATHEEQ_WHATSAPP_GATEWAY:-neonize})"
setsid .venv/bin/python -m services.whatsapp.sidecar &
pids+=($!); serving+=($!)

# The PBX's call records into the call log, for firms whose PBX settings name a record source
# (services/pbx/reconciler.py; idle otherwise). Several may run: they share firms by lease.
echo "==> starting the PBX call-record reconciler"
setsid .venv/bin/python -m services.pbx.reconciler &
pids+=($!); serving+=($!)

# Whichever part of the app stops first (or Ctrl-C) stops the rest, the dev PBX with it.
wait -n "${serving[@]}" || true
stop
