#!/usr/bin/env bash
# The one test command (README): installs what the tests need on a fresh Debian machine, then runs
# every test — Go (with -race), the static checks, and the Node end-to-end suite with real clients.
# Idempotent: installed pieces are skipped. CI calls exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One verdict line of its own at the end, whatever the last tool printed.
step="setup"
trap 'rc=$?; if ((rc)); then echo "test.sh: FAILED during \"$step\" (exit $rc)"; else echo "test.sh: all checks passed"; fi' EXIT
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"  # php-fpm8.2 and nginx live in sbin

# System packages the tests start for real: Node runs the end-to-end clients, php-fpm serves the
# FastCGI tests, nginx is the reference the proxy is compared with, redis-server backs the scaling
# tests, Chromium loads the browser test page. Pebble is a `go tool` (below).
pkgs=()
command -v node         >/dev/null || pkgs+=(nodejs)
command -v npm          >/dev/null || pkgs+=(npm)
command -v php-fpm8.2   >/dev/null || pkgs+=(php8.2-fpm)
command -v nginx        >/dev/null || pkgs+=(nginx)
command -v redis-server >/dev/null || pkgs+=(redis-server)
command -v chromium     >/dev/null || pkgs+=(chromium)
if ((${#pkgs[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "test.sh: installing ${pkgs[*]}"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-unsafe-io "${pkgs[@]}"
fi

# Go tools, pinned. Pebble is a `go tool` in go.mod (the TLS tests build it on first use).
export PATH="$(go env GOPATH)/bin:$PATH"
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Node clients for the end-to-end suite, from the committed lockfile.
(cd test/e2e && npm ci --no-audit --no-fund --loglevel=error)

export FRONTDOOR_REQUIRE_INTEGRATION=1

step="static checks"
echo "== gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path '*/node_modules/*'))
if [[ -n $unformatted ]]; then echo "not gofmt'ed: $unformatted"; exit 1; fi
go vet ./...
staticcheck ./...

step="cross-compile"
echo "== cross-compile: the development platforms build and vet (README \"Platforms\")"
for target in darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64; do
  GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./cmd/frontdoor
  GOOS=${target%/*} GOARCH=${target#*/} go vet ./...
done
go vet -tags portable ./...
staticcheck -tags portable ./pusher/...

step="go test"
echo "== go test"
go test -race -count=1 -timeout 20m ./...
# Allocation tests (testing.AllocsPerRun) are built only without the race detector.
go test -count=1 -run 'Allocs' ./...
# The portable WebSocket driver (macOS, Windows, FreeBSD) against the same protocol tests, here
# on Linux: the portable tag selects it instead of epoll.
go test -race -count=1 -tags portable ./pusher/...

step="release build"
echo "== release build (the command the Dockerfile runs; no Docker engine here)"
rel=$(mktemp -d)
VERSION=v0.0.0-ci deploy/build.sh "$rel/frontdoor"
"$rel/frontdoor" version | grep -q "frontdoor v0.0.0-ci" || { echo "deploy/build.sh: version not stamped"; exit 1; }
VERSION=v0.0.0-ci deploy/build.sh --release "$rel/dist"
for f in frontdoor-linux-amd64 frontdoor-linux-arm64 frontdoor-darwin-arm64 frontdoor-darwin-amd64 frontdoor-windows-amd64.exe; do
  grep -q " $f\$" "$rel/dist/SHA256SUMS" || { echo "deploy/build.sh --release: no $f"; exit 1; }
done
grep -q 'deploy/build.sh' Dockerfile || { echo "Dockerfile no longer runs deploy/build.sh"; exit 1; }

step="end-to-end"
echo "== end-to-end (pusher-js, laravel-echo, pusher SDK against the built binary)"
bin=$(mktemp -d)/frontdoor
go build -o "$bin" ./cmd/frontdoor
(cd test/e2e && FRONTDOOR_BIN="$bin" npm test)
