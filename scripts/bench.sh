#!/usr/bin/env bash
# Run every benchmark in bench/ at its default sizes (figures are printed; the recorded
# ones are in docs/PERFORMANCE.md). Each script also runs on its own with --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_deps.sh
export PATH="$(pwd)/.tools/node_modules/.bin:$PATH"
for b in bench/bench_*.py; do
  echo "==> $b"
  .venv/bin/python "$b"
done
echo "==> bench/softphone_bundle.sh"
bash bench/softphone_bundle.sh
