#!/usr/bin/env bash
# Idempotent set-up shared by `make run` and `make test`: virtualenv, Python packages,
# bun (from the npm registry, project-local), the secret key in .env, the database schema.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing Python packages (requirements.txt)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

# bun: Reflex's own installer downloads a binary from outside the registries; take the
# npm package instead, into a project-local folder.
if [ ! -x .tools/node_modules/.bin/bun ]; then
  echo "==> installing bun from the npm registry into .tools/"
  mkdir -p .tools
  (cd .tools && [ -f package.json ] || echo '{"private":true}' > package.json)
  (cd .tools && npm install --no-audit --no-fund --silent bun@1.4.4)
fi

# A local secret key for AES-GCM and tokens, generated once, never committed.
if [ -z "${WATHEEQ_SECRET_KEY:-}" ] && ! grep -q '^WATHEEQ_SECRET_KEY=' .env 2>/dev/null; then
  echo "==> generating WATHEEQ_SECRET_KEY into .env"
  key=$(.venv/bin/python -c 'from services.security import generate_key; print(generate_key())')
  umask 077
  echo "WATHEEQ_SECRET_KEY=$key" >> .env
fi

# Reflex copies .web/package.json back over the committed reflex.lock/package.json on
# every start: both written as Reflex writes them, an unchanged dependency set stays unchanged.
.venv/bin/python scripts/frontend_lock.py "$ROOT"

echo "==> migrating the database"
.venv/bin/python -m services.cli migrate
