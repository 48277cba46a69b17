#!/usr/bin/env bash
# Page-load benchmark: HTTP/2 page load of a Laravel-shaped page with 40 assets in headless
# Chromium, frontdoor against Nginx and Caddy over an emulated RTT, plus h2load requests/s.
# What it measures and how to read it: docs/benchmarks.md "Page load over HTTP/2".
#
#   bench/pageload.sh                      # 20 cold loads per server, 50 ms RTT
#   RUNS=40 RTT=100ms bench/pageload.sh    # more loads, another RTT
#   SERVERS=frontdoor,nginx bench/pageload.sh
#   BANDWIDTH=1250 bench/pageload.sh       # and a 10 Mbit/s downlink (KB/s, toxiproxy's bandwidth toxic)
#   BASE_BIN=/tmp/frontdoor-old SERVERS=frontdoor,frontdoor-base bench/pageload.sh  # before/after
#   OUT=/tmp/pageload.md bench/pageload.sh # also write the Markdown tables there
#
# It installs what is missing: Debian's chromium, nginx (1.22 on bookworm), caddy (2.6),
# nghttp2-client (h2load) and php8.2-fpm through apt-get, and toxiproxy-server (pinned below)
# through `go install` into a cache directory. The kernel here has no netem, so latency comes
# from one toxiproxy per server on loopback (latency toxic, RTT/2 upstream and RTT/2 downstream),
# driven through its HTTP API (toxiproxy-cli is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."

TOXIPROXY_VERSION=v2.12.0 # github.com/Shopify/toxiproxy; its server command is cmd/server
RUNS=${RUNS:-20}
RTT=${RTT:-50ms}
SERVERS=${SERVERS:-frontdoor,nginx,caddy}
H2LOAD_N=${H2LOAD_N:-20000}
OUT=${OUT:-$(mktemp --suffix=.md)}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v caddy >/dev/null || missing+=(caddy)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v php-fpm8.2 >/dev/null || [ -x /usr/sbin/php-fpm8.2 ] || missing+=(php8.2-fpm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  # The caddy and nginx packages start system services on install where a service manager
  # runs; the benchmark starts its own instances on free loopback ports.
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

bin="${XDG_CACHE_HOME:-$HOME/.cache}/frontdoor-bench/toxiproxy-$TOXIPROXY_VERSION"
if [ ! -x "$bin/toxiproxy-server" ]; then
  mkdir -p "$bin"
  GOBIN="$bin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$bin/server" "$bin/toxiproxy-server"
fi

echo "pageload: $RUNS cold loads per server ($SERVERS), RTT $RTT; h2load -n $H2LOAD_N" >&2
FRONTDOOR_PAGELOAD=1 FRONTDOOR_PAGELOAD_RUNS="$RUNS" FRONTDOOR_PAGELOAD_RTT="$RTT" \
FRONTDOOR_PAGELOAD_SERVERS="$SERVERS" FRONTDOOR_PAGELOAD_BASE_BIN="${BASE_BIN:-}" FRONTDOOR_PAGELOAD_BANDWIDTH="${BANDWIDTH:-0}" FRONTDOOR_PAGELOAD_H2LOAD_N="$H2LOAD_N" \
FRONTDOOR_PAGELOAD_OUT="$OUT" TOXIPROXY_SERVER="$bin/toxiproxy-server" \
  go test -count=1 -timeout 60m -run '^TestPageloadBenchmark$' ./test/browser/ >&2
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)"
cat "$OUT"
