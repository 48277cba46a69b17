// Package doctor implements `frontdoor doctor`: it finds the Laravel broadcasting
// misconfigurations that cost teams an evening (laravel-config.md §5, issue 8) and proves, against
// a running server, that the browser's key and the broadcaster's secret are the ones the server
// has.
//
// Static checks read the .env the way Laravel does (package dotenv) plus the files next to it that
// change its meaning: composer.lock and config/broadcasting.php (which variable selects the
// broadcaster), bootstrap/cache/config.php (config:cache freezes values), public/build/assets
// (what Vite baked into the bundle). Live checks connect to --url, or to the address the
// publisher uses (REVERB_SCHEME://REVERB_HOST:REVERB_PORT + REVERB_SERVER_PATH).
//
// Every Finding has a stable Code:
//
//	env-file-missing, env-parse-error      the .env cannot be read as Laravel reads it
//	duplicate-key                          a key on several lines; the last wins (#2)
//	env-overrides-file                     the shell's environment beats the file (info)
//	broadcast-driver-ignored               BROADCAST_DRIVER on Laravel ≥ 11 (#1)
//	broadcast-connection-ignored           BROADCAST_CONNECTION on Laravel ≤ 10 or an old config file (#1)
//	broadcast-key-ambiguous                version unknown and the two keys disagree
//	broadcaster-not-reverb                 REVERB_* set while events go to log/null
//	broadcaster-sdk-missing                reverb/pusher broadcaster without pusher/pusher-php-server in composer.lock
//	route-conflict                         an app key or id that is also a Laravel route under /app or /apps
//	app-credentials-missing/-empty/-short  REVERB_APP_ID/KEY/SECRET (#6)
//	pusher-reverb-disagree                 PUSHER_APP_* and REVERB_APP_* both set and different
//	pusher-host-empty                      pusher connection without PUSHER_HOST (#10)
//	invalid-scheme, invalid-port           values no client can use
//	scheme-port-mismatch                   http on 443, https on 80 (#7)
//	reverb-port-confusion                  REVERB_PORT copied from the bind port (#3)
//	reverb-host-loopback, vite-host-loopback   loopback hosts with APP_ENV=production (#4)
//	scheme-http-production                 plain HTTP publishing in production (#7)
//	origin-not-allowed, origin-unchecked   allowed origins not covering APP_URL (#13)
//	vite-missing, vite-mismatch, vite-unresolved   VITE_REVERB_* versus REVERB_* (#5)
//	vite-stale-build                       the bundle lacks the current key/host: npm run build (#5)
//	config-cache-stale, config-cache-unreadable    bootstrap/cache/config.php (#9)
//	queue-worker-needed                    broadcasts are queued (#12, info)
//	nofile-limit                           the descriptor limit (#14, info)
//	live-skipped, live-unreachable, live-credentials-missing, ca-file-unreadable
//	tls-ok, tls-untrusted, tls-expired, tls-not-yet-valid, tls-name-mismatch,
//	tls-expiring-soon, tls-handshake-failed
//	ws-ok, ws-handshake-failed, ws-bad-frame, ws-refused, ws-tls-required, ws-app-key-unknown (4001),
//	ws-app-disabled, ws-over-quota, ws-origin-refused (4009), ws-over-capacity
//	api-ok, api-ok-private-ca, api-tls-untrusted, api-signature-rejected (401), api-app-unknown, api-not-routed (#8), api-failed
//
// Secrets never appear in the output: a secret is shown as its length.
package doctor
