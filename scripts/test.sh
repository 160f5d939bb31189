#!/usr/bin/env bash
# Set up exactly as `make run` does, then run every test (unit, API, SQLite and
# PostgreSQL when WATHEEQ_TEST_POSTGRES_URL is set, sidecar, browser and SIP end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_deps.sh
export PATH="$(pwd)/.tools/node_modules/.bin:$PATH"
mkdir -p test-output
exec .venv/bin/python -m pytest "$@"
