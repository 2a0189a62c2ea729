#!/usr/bin/env bash
# Real-browser tests (EventSource, and the debugging UI): Chromium (Debian's /usr/bin/chromium,
# or $CHROMIUM) driven by playwright-core against the hub binary ($QS_BINARY, default
# build/mercure).
# Usage: tests/browser/run.sh   (from anywhere; build the hub first)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -d "$here/node_modules/playwright-core" ]; then
    # --prefer-offline: once the npm cache holds playwright-core, no network is needed.
    (cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi
# Each file starts its own hubs; both run, and the run fails when either does.
status=0
node "$here/eventsource.test.mjs" "$@" || status=$?
node "$here/ui.test.mjs" "$@" || status=$?
exit "$status"
