#!/usr/bin/env bash
# Release build: a static binary with its version stamped in (`frontdoor version` prints it).
# The Dockerfile runs exactly this; test/test.sh runs it too so neither can rot.
#   deploy/build.sh [output path]      (VERSION=v1.2.3 to set the version; default: git describe)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-frontdoor}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X main.version=${version} -X main.commit=${commit}" \
  -o "$out" ./cmd/frontdoor
