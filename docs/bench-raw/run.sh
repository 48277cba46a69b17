#!/usr/bin/env bash
# Re-runs every `go test` measurement quoted in docs/benchmarks.md and keeps its raw output here,
# one file per table, so each figure in the tables can be traced to the run it came from.
#
#   bash docs/bench-raw/run.sh            # all
#   bash docs/bench-raw/run.sh publish    # only the named ones (see the list below)
#
# Needs what the integration tests need (php-fpm8.2, nginx, redis-server: `bash test/test.sh`
# installs them). Run it on an otherwise idle machine: the figures are only as quiet as the box.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=docs/bench-raw
export PATH="$PATH:/usr/sbin:/sbin" FRONTDOOR_REQUIRE_INTEGRATION=1

declare -A runs=(
  [publish]="go test -run XXX -bench BenchmarkPublish -benchtime 2s -count 3 ./pusher/"
  [idle-subscribed]="go test -count=1 -run TestIdleSubscribedMemory -v ./pusher/"
  [idle-ws]="go test -count=1 -run 'TestIdleMemory$' -v ./pusher/internal/ws/"
  [parser]="go test -run '^$' -bench Parser -benchtime=2s ./pusher/internal/ws/"
  [fanout-flush]="go test -run '^$' -bench FanoutFlush -count 2 ./pusher/internal/ws/"
  [cluster-fanout]="go test -run '^$' -bench ClusterFanout -benchtime 2000x ./pusher/redis/"
  [proxy-vs-nginx]="go test -run XXX -bench FrontdoorVsNginx -benchtime 5s -count 2 ./proxy/"
  [proxy-handler]="go test -run XXX -bench 'ServeStatic|ServeFastCGI|ServeHTTPUpstream' ./proxy/"
  [tls]="go test -run '^$' -bench . -benchtime 2s -count 3 ./tls"
)
names=("$@")
((${#names[@]})) || names=(publish idle-subscribed idle-ws parser fanout-flush cluster-fanout proxy-vs-nginx proxy-handler tls)

bin=$(mktemp -d)/frontdoor
go build -o "$bin" ./cmd/frontdoor
export FRONTDOOR_BIN="$bin"
for n in "${names[@]}"; do
  cmd=${runs[$n]:?unknown run $n}
  echo "== $n: $cmd"
  {
    echo "# $cmd"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(go version) $(nproc) CPUs, $(git rev-parse --short HEAD)"
    # shellcheck disable=SC2086 # the command is a list of words
    eval "$cmd" 2>&1
  } | tee "$out/$n.txt"
done
