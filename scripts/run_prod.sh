#!/usr/bin/env bash
# `make run-prod`: the production topology on one machine, every part from Debian or PyPI
# packages, started and stopped together (Ctrl-C stops all; a sidecar or reconciler that
# exits is restarted, anything else exiting stops all):
#   Caddy        HTTPS on WATHEEQ_HTTPS_PORT (HTTP redirects), one origin for everything
#   PostgreSQL   WATHEEQ_DATABASE_URL, migrated on start
#   Redis        REDIS_URL, or a local redis-server started here
#   Reflex       one port (frontend + websocket + API + exports), WATHEEQ_BACKEND_WORKERS workers
#   Sidecars     WATHEEQ_SIDECARS WhatsApp sidecars and as many PBX call-record reconcilers,
#                sharing the firms under leases
# Settings: one env file, deploy/watheeq.env (WATHEEQ_PROD_ENV to use another); see
# deploy/watheeq.env.example. The PBX lab is not part of it (a real UCM is); set
# WATHEEQ_PROD_PBX_LAB=on to start it too, reachable at wss://SITE:PORT/sip-ws.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
umask 077

env_file=${WATHEEQ_PROD_ENV:-deploy/watheeq.env}
if [ ! -f "$env_file" ]; then
  echo "No $env_file: copy deploy/watheeq.env.example to $env_file and fill it in." >&2
  exit 2
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
# The app reads its settings from the environment only (not the development .env).
export WATHEEQ_ENV_FILE=/dev/null
export WATHEEQ_ENV=production
: "${WATHEEQ_DATABASE_URL:?WATHEEQ_DATABASE_URL must name the PostgreSQL database (see $env_file)}"
: "${WATHEEQ_SECRET_KEY:?WATHEEQ_SECRET_KEY must be set in $env_file}"
case "$WATHEEQ_DATABASE_URL" in postgresql*) ;; *) echo "run-prod needs PostgreSQL (WATHEEQ_DATABASE_URL=postgresql://...)" >&2; exit 2;; esac
site=${WATHEEQ_SITE_ADDRESS:-localhost}
https_port=${WATHEEQ_HTTPS_PORT:-443}
app_port=${WATHEEQ_APP_PORT:-8000}
workers=${WATHEEQ_BACKEND_WORKERS:-$(nproc)}
sidecars=${WATHEEQ_SIDECARS:-2}
run_dir=${WATHEEQ_PROD_RUN_DIR:-$ROOT/data/prod}
mkdir -p "$run_dir"
if ! command -v caddy >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  echo "run-prod needs Caddy and Redis from Debian: sudo apt-get install caddy redis-server" >&2
  exit 2
fi

bash scripts/setup.sh
export PATH="$ROOT/.tools/node_modules/.bin:$PATH"
export REFLEX_USE_SYSTEM_BUN=1 REFLEX_CHECK_LATEST_VERSION=0
[ -n "${NPM_CONFIG_REGISTRY:-}" ] || { NPM_CONFIG_REGISTRY="$(npm config get registry)"; export NPM_CONFIG_REGISTRY; }

pids=()
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap - INT TERM EXIT
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
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

if [ -z "${REDIS_URL:-}" ]; then
  redis_port=${WATHEEQ_REDIS_PORT:-6390}
  echo "==> starting redis-server on 127.0.0.1:$redis_port"
  setsid redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$run_dir" \
    --protected-mode yes >"$run_dir/redis.log" 2>&1 &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done
fi

echo "==> migrating PostgreSQL"
.venv/bin/python -m services.cli migrate

public=https://$site
[ "$https_port" = 443 ] || public="$public:$https_port"
export REFLEX_API_URL=$public WATHEEQ_PUBLIC_URL=$public
export WATHEEQ_CORS_ORIGINS=${WATHEEQ_CORS_ORIGINS:-$public}
export GRANIAN_WORKERS=$workers

if [ "${WATHEEQ_PROD_PBX_LAB:-off}" = on ]; then
  pbx_dir=${DEV_PBX_DIR:-$run_dir/pbx}
  mkdir -p "$pbx_dir"
  echo "==> starting the PBX lab (wss through Caddy at $public/sip-ws)"
  DEV_PBX_DIR="$pbx_dir" setsid bash scripts/dev_pbx.sh >"$pbx_dir/kamailio.log" 2>&1 &
  pids+=($!)
fi

echo "==> building and starting the app: $workers workers on 127.0.0.1:$app_port"
setsid .venv/bin/python scripts/serve_app.py run --env prod --single-port --backend-host 127.0.0.1 --backend-port "$app_port" \
  >"$run_dir/app.log" 2>&1 &
app_pid=$!
pids+=("$app_pid")

# Sidecars and call-record reconcilers share the firms under leases; each sidecar's name
# keeps its identity across restarts, so a restarted one takes its own firms back at once.
# Each is restarted when it exits (as the systemd units in deploy/ do), after
# WATHEEQ_PROD_RESTART_SECONDS (5): meanwhile the other sidecars and reconcilers take its firms
# over when its leases lapse, and the restarted one takes back what it still holds at once.
# Only the app, Caddy, Redis or the PBX lab exiting stops the whole topology.
restart_after=${WATHEEQ_PROD_RESTART_SECONDS:-5}
declare -A part_of=()
start_part() {  # start_part NAME: a sidecar-N or reconciler-N, its output appended to its log
  local name=$1
  case "$name" in
    sidecar-*) setsid .venv/bin/python -m services.whatsapp.sidecar --name "$name" >>"$run_dir/$name.log" 2>&1 & ;;
    reconciler-*) setsid .venv/bin/python -m services.pbx.reconciler >>"$run_dir/$name.log" 2>&1 & ;;
  esac
  pids+=($!)
  part_of[$!]=$name
}
for i in $(seq 1 "$sidecars"); do
  : >"$run_dir/sidecar-$i.log"
  : >"$run_dir/reconciler-$i.log"
  start_part "sidecar-$i"
  start_part "reconciler-$i"
done

# Caddy's state (its internal CA, certificates) stays in the project's data folder.
export XDG_DATA_HOME=$run_dir/caddy-data XDG_CONFIG_HOME=$run_dir/caddy-config
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"
export WATHEEQ_APP_UPSTREAM=127.0.0.1:$app_port
setsid caddy run --config deploy/Caddyfile --adapter caddyfile >"$run_dir/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")

echo "==> waiting for the app (first start builds the frontend: a few minutes)"
until (exec 3<>"/dev/tcp/127.0.0.1/$app_port") 2>/dev/null; do
  kill -0 "$app_pid" 2>/dev/null || { echo "the app stopped; last lines of $run_dir/app.log:" >&2; tail -n 20 "$run_dir/app.log" >&2; exit 1; }
  sleep 1
done
# bun re-indents package.json when it adds a package; Reflex has copied it back by now.
.venv/bin/python scripts/frontend_lock.py "$ROOT"
echo "==> Watheeq is serving at $public"
if [ "${WATHEEQ_TLS_MODE:-internal}" = internal ]; then
  echo "    The certificate comes from Caddy's internal CA. Trust it once on each office PC:"
  echo "    import $XDG_DATA_HOME/caddy/pki/authorities/local/root.crt as a trusted root"
  echo "    (Windows: certutil -addstore -f ROOT root.crt; Debian: copy to /usr/local/share/ca-certificates/ and run update-ca-certificates)."
fi
echo "    Logs: $run_dir/{app,caddy,sidecar-N,reconciler-N,redis}.log"
while true; do
  wait -n "${pids[@]}" || true
  alive=()
  ended=()
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); else ended+=("$pid"); fi
  done
  pids=("${alive[@]}")
  for pid in "${ended[@]}"; do
    name=${part_of[$pid]:-}
    if [ -z "$name" ]; then
      echo "==> a core part (pid $pid: the app, Caddy, Redis or the PBX lab) exited" >&2
      stop
      exit 1
    fi
    unset "part_of[$pid]"
    echo "==> $name exited; restarting it in ${restart_after} s (its firms move to the others when its leases lapse)"
    ( sleep "$restart_after" ) &
    wait $! || true
    [ "$stopping" = 1 ] && exit 0
    start_part "$name"
  done
done
