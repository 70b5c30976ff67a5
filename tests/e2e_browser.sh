#!/usr/bin/env bash
# The web UI end to end in headless Chromium (tests/browser/e2e.mjs, playwright-core driving
# Debian's /usr/bin/chromium; no browser download). Skips (exit 0, printing SKIPPED) only when
# chromium or node is missing; CI installs both (.ci/packages) and runs `npm ci` first.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] || ! command -v node >/dev/null; then
    echo "SKIPPED: e2e_browser needs chromium ($CHROMIUM) and node; install them (apt-get install chromium nodejs npm)" >&2
    exit 0
fi
if [ ! -d "$HERE/browser/node_modules/playwright-core" ]; then
    echo "tests/browser/node_modules is missing: running npm ci" >&2
    (cd "$HERE/browser" && npm ci --no-audit --no-fund) || { echo "FAIL: npm ci in tests/browser" >&2; exit 1; }
fi
: "${SHOEBOX_TMP:?}"
export CHROMIUM
export SHOEBOX_SHOTS="${SHOEBOX_SHOTS:-$(dirname "$SHOEBOX_TMP")/browser-shots}"
exec node "$HERE/browser/e2e.mjs"
