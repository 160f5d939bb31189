#!/usr/bin/env bash
# Run every benchmark in bench/ (figures are printed; see docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.tools/node_modules/.bin:$PATH"
for b in bench/bench_*.py; do
  echo "==> $b"
  .venv/bin/python "$b" "$@"
done
