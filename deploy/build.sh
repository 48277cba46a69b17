#!/usr/bin/env bash
# Release build: static binaries with their version stamped in (`frontdoor version` prints it).
# The Dockerfile runs the single-target form; test/test.sh runs both so neither can rot.
#   deploy/build.sh [output path]        one binary for this machine, or for GOOS/GOARCH if set
#   deploy/build.sh --release [dir]      every release target into dir (default dist/), named
#                                        frontdoor-<os>-<arch>[.exe], with SHA256SUMS
# VERSION=v1.2.3 sets the version (default: git describe).
#
# Linux is the production platform (epoll WebSocket driver, SO_REUSEPORT restarts, worker
# Pdeathsig); the macOS and Windows builds are for development (README "Platforms").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

build() { # build <output path>; GOOS/GOARCH from the environment
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.version=${version} -X main.commit=${commit}" \
    -o "$1" ./cmd/frontdoor
}

if [[ ${1:-} != --release ]]; then
  build "${1:-frontdoor}"
  exit 0
fi

dir=${2:-dist}
mkdir -p "$dir"
targets=(linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64)
for t in "${targets[@]}"; do
  os=${t%/*} arch=${t#*/}
  name="frontdoor-$os-$arch"
  [[ $os == windows ]] && name+=".exe"
  echo "build.sh: $name"
  GOOS=$os GOARCH=$arch build "$dir/$name"
done
(cd "$dir" && sha256sum frontdoor-* > SHA256SUMS)
