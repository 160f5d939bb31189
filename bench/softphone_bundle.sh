#!/usr/bin/env bash
# Bytes the softphone adds to the page: softphone.jsx and its hooks with jssip (pinned)
# and its dependencies bundled and minified, React left out (the page has it already).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pin=$(.venv/bin/python -c 'from watheeq_ui.components.softphone.softphone import JSSIP; print(JSSIP)')
(cd "$work" && echo '{"private":true}' > package.json && npm install --no-audit --no-fund --silent "$pin" >/dev/null)
cp watheeq_ui/components/softphone/softphone.jsx watheeq_ui/components/softphone/*.js "$work/"
"$ROOT/.tools/node_modules/.bin/bun" build "$work/softphone.jsx" --minify --external react --external '$/env.json' \
  --external react/jsx-runtime --external react/jsx-dev-runtime --outfile "$work/softphone.js" >/dev/null
"$ROOT/.tools/node_modules/.bin/bun" build "$work/node_modules/jssip/lib/JsSIP.js" --minify --outfile "$work/jssip.js" >/dev/null
printf 'softphone (component + %s): %d bytes minified, %d bytes gzip -9\n' "$pin" \
  "$(wc -c < "$work/softphone.js")" "$(gzip -9 -c "$work/softphone.js" | wc -c)"
printf '  of which jssip alone:               %d bytes minified, %d bytes gzip -9\n' \
  "$(wc -c < "$work/jssip.js")" "$(gzip -9 -c "$work/jssip.js" | wc -c)"
