#!/usr/bin/env bash
# Install (from the committed lock) and start Soketi 1.6.1 on loopback with a known app, so
# `frontdoor bench` can measure it beside frontdoor on the same machine:
#
#   bench/peers/soketi/run.sh &            # listens on 127.0.0.1:${SOKETI_PORT:-6001}
#   frontdoor bench suite --url ws://127.0.0.1:6001 --app-id app --key key --secret secret --label soketi
#
# Soketi's GitHub-only dependency uWebSockets.js is replaced in package.json's "overrides" by
# @trufflesuite/uws-js-unofficial (same v20 API, ships a Node 20 binary). Needs node 20 and npm.
# The process runs in the foreground (exec) so its pid is this script's pid.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/@soketi/soketi/dist/cli/index.js ]; then
	npm ci --no-audit --no-fund >&2
fi
export SOKETI_HOST="${SOKETI_HOST:-127.0.0.1}"
export SOKETI_PORT="${SOKETI_PORT:-6001}"
export SOKETI_DEFAULT_APP_ID="${SOKETI_DEFAULT_APP_ID:-app}"
export SOKETI_DEFAULT_APP_KEY="${SOKETI_DEFAULT_APP_KEY:-key}"
export SOKETI_DEFAULT_APP_SECRET="${SOKETI_DEFAULT_APP_SECRET:-secret}"
export SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES="${SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES:-true}"
# Soketi's metrics server would take port 9601, frontdoor's admin default; keep it off.
export SOKETI_METRICS_ENABLED="${SOKETI_METRICS_ENABLED:-false}"
exec node node_modules/@soketi/soketi/dist/cli/index.js start "$@"
