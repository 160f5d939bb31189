#!/usr/bin/env bash
# Set up exactly as `make run` does, then run every test (unit, API, SQLite and
# PostgreSQL when WATHEEQ_TEST_POSTGRES_URL is set, sidecar, browser and SIP end-to-end).
#
# With no arguments the suite runs in two parts: the service, API and sidecar tests on one
# pytest-xdist worker per core (each worker with its own PostgreSQL database), then the
# browser, SIP, production-profile and several-worker (tests/scaleout) tests one at a time
# (they own ports, a network namespace and real-time media). Arguments run pytest once with
# them, as given.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_deps.sh
export PATH="$(pwd)/.tools/node_modules/.bin:$PATH"
mkdir -p test-output
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
end_to_end=(tests/e2e tests/softphone tests/production tests/scaleout)
workers=$(nproc 2>/dev/null || echo 2)
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadfile $(printf -- '--ignore=%s ' "${end_to_end[@]}") tests || status=$?
.venv/bin/python -m pytest "${end_to_end[@]}" || status=$?
exit "$status"
