#!/usr/bin/env bash
# The production stack most Laravel apps run today, for `frontdoor bench` to measure beside
# frontdoor: Nginx terminating TLS in front of a Pusher-protocol server (Reverb or Soketi) on a
# local port, with the location blocks from Reverb's documentation (/app for the WebSocket
# upgrade, /apps for the HTTP API, both proxied with HTTP/1.1 and the Upgrade headers).
#
#   bench/peers/soketi/run.sh &                      # Soketi on 127.0.0.1:6001 (or Reverb on its port)
#   STACK_BLOCK=soketi bench/peers/stack/run.sh 6001 &   # Nginx on https://127.0.0.1:8443 → 127.0.0.1:6001
#   # it prints the bench command with every pid to sample (Nginx's master and workers, the backend)
#
# The certificate is a self-signed ECDSA P-256 one made with openssl (or STACK_CERT/STACK_KEY), the
# same kind frontdoor's `--tls self-signed` serves, so both stacks do the same handshakes; bench needs
# --insecure for it. TLS as a production server has it: TLS 1.2 and 1.3, session tickets on, a 10 MB
# shared session cache. Nginx runs worker_processes auto, each worker with as many connections and
# files as the hard open-file limit allows (raise it with ulimit -Hn first: each proxied socket is
# two connections in Nginx, the client's and the upstream's).
# Runs in the foreground until stopped (SIGTERM/SIGINT stop Nginx too). Needs nginx and openssl.
set -euo pipefail
backend="${1:?usage: run.sh <backend port> [listen port]}"
listen="${2:-8443}"
dir="${STACK_DIR:-$(mktemp -d /tmp/frontdoor-bench-stack.XXXXXX)}"
mkdir -p "$dir"
cert="${STACK_CERT:-$dir/cert.pem}"
key="${STACK_KEY:-$dir/key.pem}"
if [ ! -f "$cert" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$key" -out "$cert" 2>/dev/null
fi
# STACK_BLOCK=reverb (default): the headers of Reverb's documented block. STACK_BLOCK=soketi: Soketi's
# documented block; Soketi (uWebSockets) never answers a request with a header name containing an
# underscore, such as Reverb's SERVER_PORT and REMOTE_ADDR, so Reverb's block hangs every Soketi
# connection.
case "${STACK_BLOCK:-reverb}" in
reverb) block='			proxy_http_version 1.1;
			proxy_set_header Host $http_host;
			proxy_set_header Scheme $scheme;
			proxy_set_header SERVER_PORT $server_port;
			proxy_set_header REMOTE_ADDR $remote_addr;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection "Upgrade";' ;;
soketi) block='			proxy_read_timeout 60;
			proxy_connect_timeout 60;
			proxy_redirect off;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection "upgrade";
			proxy_set_header Host $host;
			proxy_cache_bypass $http_upgrade;' ;;
*) echo "STACK_BLOCK: invalid value ${STACK_BLOCK}: want reverb or soketi" >&2; exit 2 ;;
esac
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$dir/nginx.conf" <<CONF
$user
worker_processes auto;
worker_rlimit_nofile $(ulimit -Hn);
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections $(ulimit -Hn); }
http {
	access_log off;
	client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_session_tickets on;
	ssl_session_cache shared:SSL:10m;
	server {
		listen 127.0.0.1:$listen ssl;
		server_name localhost;
		ssl_certificate $cert;
		ssl_certificate_key $key;
		location ~ ^/apps? {
$block
			proxy_pass http://127.0.0.1:$backend;
		}
	}
}
CONF
nginx -t -p "$dir" -c "$dir/nginx.conf" >&2
nginx -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" &
master=$!
trap 'kill $master 2>/dev/null; wait $master' TERM INT EXIT
for _ in $(seq 1 100); do
	(echo >"/dev/tcp/127.0.0.1/$listen") 2>/dev/null && break
	sleep 0.1
done
sleep 0.2
pids="--server-pid $master"
for w in $(cat "/proc/$master/task/$master/children"); do pids="$pids --server-pid $w"; done
backend_pid=$(ss -Hltnp "sport = :$backend" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
[ -n "$backend_pid" ] && pids="$pids --server-pid $backend_pid"
echo "nginx on https://127.0.0.1:$listen → 127.0.0.1:$backend (config $dir/nginx.conf)" >&2
echo "frontdoor bench suite --url wss://127.0.0.1:$listen --insecure $pids --app-id … --key … --secret … --label nginx+…" >&2
wait $master
