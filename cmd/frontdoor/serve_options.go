package main

import (
	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers"
	"github.com/frontdoorhq/frontdoor/pusher"
	fdtls "github.com/frontdoorhq/frontdoor/tls"

	"strconv"
	"time"
)

// serveOptions lists every `serve` flag. Each also reads FRONTDOOR_<NAME> (docs/configuration.md).
func serveOptions() []*option {
	str := func(dst func(*settings) *string) func(*settings, []string) error {
		return func(s *settings, v []string) error { *dst(s) = v[len(v)-1]; return nil }
	}
	list := func(dst func(*settings) *[]string) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			var out []string
			for _, x := range v {
				out = append(out, splitList(x)...)
			}
			*dst(s) = out
			return nil
		}
	}
	boolean := func(name string, dst func(*settings) *bool) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			b, err := strconv.ParseBool(v[len(v)-1])
			if err != nil {
				return badValue("--"+name, v[len(v)-1], "want true or false")
			}
			*dst(s) = b
			return nil
		}
	}
	duration := func(name string, dst func(*settings) *time.Duration) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			d, err := time.ParseDuration(v[len(v)-1])
			if err != nil {
				return badValue("--"+name, v[len(v)-1], "want a duration such as 30s or 5m")
			}
			*dst(s) = d
			return nil
		}
	}
	integer := func(name string, dst func(*settings) *int) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			n, err := parsePositiveInt("--"+name, v[len(v)-1])
			*dst(s) = n
			return err
		}
	}
	appField := func(set func(a *pusher.AppConfig, v string)) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			set(s.primaryApp(), v[len(v)-1])
			return nil
		}
	}
	appInt := func(name string, dst func(a *pusher.AppConfig) *int) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			n, err := parsePositiveInt("--"+name, v[len(v)-1])
			*dst(s.primaryApp()) = n
			return err
		}
	}
	appBool := func(name string, dst func(a *pusher.AppConfig) *bool) func(*settings, []string) error {
		return func(s *settings, v []string) error {
			b, err := strconv.ParseBool(v[len(v)-1])
			if err != nil {
				return badValue("--"+name, v[len(v)-1], "want true or false")
			}
			*dst(s.primaryApp()) = b
			return nil
		}
	}
	return []*option{
		// Listeners and process.
		{name: "listen", usage: "plain-HTTP `address` (development, or a loopback listener for the broadcaster beside TLS)", apply: str(func(s *settings) *string { return &s.Listen })},
		{name: "admin", usage: "admin listener `address` for /healthz, /readyz, /metrics, or off", apply: str(func(s *settings) *string { return &s.Admin })},
		{name: "pprof", isBool: true, usage: "serve /debug/pprof on the admin listener", apply: boolean("pprof", func(s *settings) *bool { return &s.Pprof })},
		{name: "shutdown-timeout", usage: "how long in-flight requests may finish on SIGTERM", apply: duration("shutdown-timeout", func(s *settings) *time.Duration { return &s.ShutdownTimeout })},
		{name: "pid-file", usage: "`file` to write the process id to (for frontdoor restart)", apply: str(func(s *settings) *string { return &s.PidFile })},
		{name: "log-level", usage: "trace, debug, info, warn or error", apply: str(func(s *settings) *string { return &s.LogLevel })},
		{name: "debug", isBool: true, usage: "log every WebSocket frame in and out and every API call, signatures redacted (log level trace, as reverb:start --debug)", apply: boolean("debug", func(s *settings) *bool { return &s.Debug })},
		{name: "log-format", usage: "auto (console on a terminal, else JSON), json or console", apply: str(func(s *settings) *string { return &s.LogFormat })},
		{name: "proxy-protocol", repeated: true, usage: "`listeners` (https, http, plain or all) that expect a PROXY protocol v1/v2 header from a --trusted-proxies balancer", apply: list(func(s *settings) *[]string { return &s.ProxyProtocol })},
		{name: "access-log", isBool: true, usage: "one log line per proxied request", apply: boolean("access-log", func(s *settings) *bool { return &s.AccessLog })},

		// Pusher.
		{name: "path-prefix", usage: "mount `prefix` for /app and /apps (REVERB_SERVER_PATH)", apply: str(func(s *settings) *string { return &s.Pusher.PathPrefix })},
		{name: "app-id", usage: "Pusher app `id` (REVERB_APP_ID)", apply: func(s *settings, v []string) error {
			s.renamePrimaryApp(v[len(v)-1])
			return nil
		}},
		{name: "app-key", usage: "Pusher app `key` (REVERB_APP_KEY)", apply: appField(func(a *pusher.AppConfig, v string) { a.Key = v })},
		{name: "app-secret", usage: "Pusher app `secret` (REVERB_APP_SECRET)", apply: appField(func(a *pusher.AppConfig, v string) { a.Secret = v })},
		{name: "allowed-origins", repeated: true, usage: "origin host `patterns` allowed to connect (comma list, * wildcards)", apply: func(s *settings, v []string) error {
			var out []string
			for _, x := range v {
				out = append(out, splitList(x)...)
			}
			s.primaryApp().AllowedOrigins = out
			return nil
		}},
		{name: "max-connections", usage: "server-wide WebSocket connection cap, 0 = unlimited", apply: integer("max-connections", func(s *settings) *int { return &s.Pusher.MaxConnections })},
		{name: "max-connections-per-ip", usage: "WebSocket connections from one client address (IPv6: one /64), 4100 above it; 0 = unlimited; loopback is exempt (default 1000)", apply: func(s *settings, v []string) error {
			n, err := parsePositiveInt("--max-connections-per-ip", v[len(v)-1])
			s.Pusher.MaxConnectionsPerIP = perIPSetting(n)
			return err
		}},
		{name: "max-subscriptions-per-connection", usage: "channels one socket may join (default 100)", apply: appInt("max-subscriptions-per-connection", func(a *pusher.AppConfig) *int { return &a.MaxSubscriptionsPerConnection })},
		{name: "max-channels", usage: "occupied channels the app may have on this node, 0 = unlimited", apply: appInt("max-channels", func(a *pusher.AppConfig) *int { return &a.MaxChannels })},
		{name: "subscribe-rate", usage: "pusher:subscribe messages per second per socket, burst max-subscriptions-per-connection (default 10)", apply: appInt("subscribe-rate", func(a *pusher.AppConfig) *int { return &a.SubscribeRate })},
		{name: "max-protocol-errors", usage: "malformed or unknown frames after which a socket is closed with 4009 (default 20)", apply: appInt("max-protocol-errors", func(a *pusher.AppConfig) *int { return &a.MaxProtocolErrors })},
		{name: "rate-limiting", isBool: true, usage: "per-connection message rate limit, as Reverb's (REVERB_APP_RATE_LIMITING_ENABLED)", apply: appBool("rate-limiting", func(a *pusher.AppConfig) *bool { return &a.RateLimiting.Enabled })},
		{name: "rate-limit-max-attempts", usage: "messages per window with --rate-limiting (REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS, default 60)", apply: appInt("rate-limit-max-attempts", func(a *pusher.AppConfig) *int { return &a.RateLimiting.MaxAttempts })},
		{name: "rate-limit-decay-seconds", usage: "window length in seconds with --rate-limiting (REVERB_APP_RATE_LIMIT_DECAY_SECONDS, default 60)", apply: appInt("rate-limit-decay-seconds", func(a *pusher.AppConfig) *int { return &a.RateLimiting.DecaySeconds })},
		{name: "rate-limit-terminate", isBool: true, usage: "close a socket over the rate limit (REVERB_APP_RATE_LIMIT_TERMINATE)", apply: appBool("rate-limit-terminate", func(a *pusher.AppConfig) *bool { return &a.RateLimiting.TerminateOnLimit })},
		{name: "webhook", repeated: true, usage: "webhook `url` for the app (repeatable): http(s)://… or a path such as /pusher/webhook, delivered to PHP directly; every event", apply: func(s *settings, v []string) error {
			app := s.primaryApp()
			for _, x := range v {
				for _, u := range splitList(x) {
					app.Webhooks = append(app.Webhooks, pusher.WebhookConfig{URL: u})
				}
			}
			return nil
		}},
		{name: "redis", usage: "Redis `URL` joining this node to others serving the same apps: redis://[user:password@]host:6379/0 or rediss://… (REVERB_SCALING_ENABLED + REDIS_*)", apply: str(func(s *settings) *string { return &s.Redis.URL })},
		{name: "redis-prefix", usage: "`prefix` of every Redis key and channel, so deployments can share one Redis (default frontdoor)", apply: str(func(s *settings) *string { return &s.Redis.Prefix })},
		{name: "redis-outage-queue", usage: "messages for other nodes kept while Redis is unreachable, sent in order when it returns; beyond, the oldest are dropped (default 10000)", apply: integer("redis-outage-queue", func(s *settings) *int { return &s.Redis.OutageQueue })},
		{name: "redis-outage-max-age", usage: "how long a message for other nodes waits for Redis to return before it is dropped (default 30s)", apply: duration("redis-outage-max-age", func(s *settings) *time.Duration { return &s.Redis.OutageMaxAge })},

		// PHP.
		{name: "upstream", repeated: true, usage: "PHP `upstream`: fastcgi://127.0.0.1:9000, fastcgi:///run/php/php8.2-fpm.sock or http://127.0.0.1:8000 (repeatable)", apply: list(func(s *settings) *[]string { return &s.Proxy.Upstreams })},
		{name: "root", usage: "Laravel's public/ `directory`, served as static files", apply: str(func(s *settings) *string { return &s.Proxy.Root })},
		{name: "symlink-root", repeated: true, usage: "`directory` that symlinks under --root may lead to and be served from (repeatable; default ../storage/app/public, Laravel's storage:link)", apply: list(func(s *settings) *[]string { return &s.Proxy.SymlinkRoots })},
		{name: "max-body", usage: "largest request body passed to PHP: a `size` in bytes or with K, M, G as in Nginx's client_max_body_size (64M)", apply: func(s *settings, v []string) error {
			n, err := parseByteSize(v[len(v)-1])
			if err != nil {
				return badValue("--max-body", v[len(v)-1], err.Error())
			}
			s.Proxy.MaxBody = n
			return nil
		}},
		{name: "body-timeout", usage: "longest silence while a client sends a request body (408 beyond; bodies are read in full before PHP sees them)", apply: duration("body-timeout", func(s *settings) *time.Duration { return &s.Proxy.BodyTimeout })},
		{name: "body-buffer-limit", usage: "`size` of request bodies held at once in memory and temporary files while they arrive (503 beyond; default 1G or --max-body)", apply: func(s *settings, v []string) error {
			n, err := parseByteSize(v[len(v)-1])
			if err != nil {
				return badValue("--body-buffer-limit", v[len(v)-1], err.Error())
			}
			s.Proxy.BodyBufferLimit = n
			return nil
		}},
		{name: "stream-request-bodies", isBool: true, usage: "pass request bodies to an http:// upstream as they arrive instead of reading them first", apply: boolean("stream-request-bodies", func(s *settings) *bool { return &s.Proxy.StreamRequestBodies })},
		{name: "allow-any-host", isBool: true, usage: "serve requests for any Host, not only the --domain names (421 otherwise)", apply: boolean("allow-any-host", func(s *settings) *bool { return &s.Proxy.AllowAnyHost })},
		{name: "sendfile-root", repeated: true, usage: "`directory` PHP may hand files from with X-Sendfile, or /location/=directory for X-Accel-Redirect (repeatable; relative to --root, e.g. ../storage/app)", apply: list(func(s *settings) *[]string { return &s.Proxy.SendfileRoots })},
		{name: "trusted-proxies", repeated: true, usage: "balancers and CDNs whose X-Forwarded-* and CF-Connecting-IP are believed: `addresses`, CIDRs, cloudflare or private (comma list, repeatable)", apply: list(func(s *settings) *[]string { return &s.Proxy.TrustedProxies })},
		{name: "compress", isBool: true, usage: "compress responses with br, zstd or gzip as the client accepts (default true; false to leave it to a CDN)", apply: func(s *settings, v []string) error {
			b, err := strconv.ParseBool(v[len(v)-1])
			if err != nil {
				return badValue("--compress", v[len(v)-1], "want true or false")
			}
			s.Proxy.DisableCompression = !b
			return nil
		}},
		{name: "compress-level", usage: "compression `level` 1 (fastest) to 9 (smallest), gzip's scale; brotli uses the same number, zstd the nearest of its speeds (default 5)", apply: integer("compress-level", func(s *settings) *int { return &s.Proxy.CompressLevel })},
		{name: "build-dir", usage: "Vite's build `directory` under --root whose hashed files outlive a deploy (default build)", apply: str(func(s *settings) *string { return &s.Proxy.BuildDir })},
		{name: "previous-releases", usage: "releases before the current one whose hashed build assets stay served to open tabs, 0 = off (default 3)", apply: func(s *settings, v []string) error {
			n, err := parsePositiveInt("--previous-releases", v[len(v)-1])
			s.Proxy.PreviousReleases = offIfZero(n)
			return err
		}},
		{name: "previous-releases-window", usage: "how long after a deploy the replaced release's hashed assets stay served (default 1h)", apply: duration("previous-releases-window", func(s *settings) *time.Duration { return &s.Proxy.PreviousReleasesWindow })},
		{name: "previous-releases-copy-limit", usage: "`size` of previous releases' hashed assets copied aside at a deploy, so they outlive a deleted release directory (default 256M)", apply: func(s *settings, v []string) error {
			n, err := parseByteSize(v[len(v)-1])
			if err != nil {
				return badValue("--previous-releases-copy-limit", v[len(v)-1], err.Error())
			}
			s.Proxy.PreviousReleasesCopyLimit = n
			return nil
		}},
		{name: "auth-lane-share", usage: "share of a php-fpm pool's connections that /broadcasting/auth may use at once, so reconnect storms leave the rest to pages; 0 = off (default 0.5)", apply: func(s *settings, v []string) error {
			f, err := strconv.ParseFloat(v[len(v)-1], 64)
			if err != nil || f < 0 || f > 1 {
				return badValue("--auth-lane-share", v[len(v)-1], "want a share from 0 (off) to 1, e.g. 0.5")
			}
			s.Proxy.AuthLaneShare = shareOrOff(f)
			return nil
		}},
		{name: "auth-queue", usage: "authorizations waiting for the lane, 503 beyond (default 4096)", apply: integer("auth-queue", func(s *settings) *int { return &s.Proxy.AuthQueue })},
		{name: "auth-queue-timeout", usage: "longest an authorization waits for the lane, 503 beyond (default 20s)", apply: duration("auth-queue-timeout", func(s *settings) *time.Duration { return &s.Proxy.AuthQueueTimeout })},
		{name: "upstream-connect-timeout", usage: "time limit to connect to PHP", apply: duration("upstream-connect-timeout", func(s *settings) *time.Duration { return &s.Proxy.ConnectTimeout })},
		{name: "upstream-read-timeout", usage: "time limit for PHP's response", apply: duration("upstream-read-timeout", func(s *settings) *time.Duration { return &s.Proxy.ReadTimeout })},
		{name: "upstream-write-timeout", usage: "time limit to send the request to PHP", apply: duration("upstream-write-timeout", func(s *settings) *time.Duration { return &s.Proxy.WriteTimeout })},

		// The app's own processes (queue workers, Horizon, the scheduler), supervised.
		{name: "worker", repeated: true, envSep: ";", usage: "`command` to run and keep running, e.g. \"php artisan queue:work --tries=3\" (repeatable; prefix name= or name*count= to name it or run several; FRONTDOOR_WORKER separates commands with ;)", apply: func(s *settings, v []string) error {
			s.Workers = s.Workers[:0:0]
			for _, x := range v {
				c, err := workers.ParseFlag(x)
				if err != nil {
					return badValue("--worker", x, err.Error()+` (want a command, optionally prefixed name= or name*count=)`)
				}
				s.Workers = append(s.Workers, c)
			}
			return nil
		}},

		// TLS.
		{name: "tls", usage: "off, auto (ACME, default with --domain), files or self-signed", apply: func(s *settings, v []string) error {
			s.TLS.Mode = fdtls.Mode(v[len(v)-1])
			return nil
		}},
		{name: "domain", tlsOnly: true, repeated: true, usage: "`name` to obtain a certificate for (repeatable)", apply: func(s *settings, v []string) error {
			var out []string
			for _, x := range v {
				out = append(out, splitList(x)...)
			}
			s.TLS.Domains = out
			return nil
		}},
		{name: "acme-email", tlsOnly: true, usage: "contact `email` for the ACME account", apply: str(func(s *settings) *string { return &s.TLS.Email })},
		{name: "cert-cache", tlsOnly: true, usage: "`directory` for ACME certificates and the kept self-signed one", apply: str(func(s *settings) *string { return &s.TLS.CacheDir })},
		{name: "acme-directory", tlsOnly: true, usage: "ACME directory `URL`, or production / staging (Let's Encrypt)", apply: str(func(s *settings) *string { return &s.TLS.ACMEDirectory })},
		{name: "acme-ca-root", tlsOnly: true, usage: "PEM `file` of a private CA that signs the ACME directory's certificate", apply: str(func(s *settings) *string { return &s.TLS.ACMECARoot })},
		{name: "https-addr", tlsOnly: true, usage: "TLS listener `address`", apply: str(func(s *settings) *string { return &s.TLS.HTTPSAddr })},
		{name: "http-addr", tlsOnly: true, usage: "plain :80 listener `address` for ACME http-01 and redirects", apply: str(func(s *settings) *string { return &s.TLS.HTTPAddr })},
		{name: "http-redirect", tlsOnly: true, isBool: true, usage: "redirect plain HTTP to https (false: serve it)", apply: boolean("http-redirect", func(s *settings) *bool { return &s.TLS.HTTPRedirect })},
		{name: "tls-cert", tlsOnly: true, usage: "certificate `file` (PEM, full chain)", apply: str(func(s *settings) *string { return &s.TLS.CertFile })},
		{name: "tls-key", tlsOnly: true, usage: "private key `file` (PEM)", apply: str(func(s *settings) *string { return &s.TLS.KeyFile })},
		{name: "http2", isBool: true, usage: "offer HTTP/2 (ALPN h2) on the TLS listener beside HTTP/1.1; false: HTTP/1.1 only", apply: boolean("http2", func(s *settings) *bool { return &s.TLS.HTTP2 })},
		{name: "hsts", tlsOnly: true, usage: "Strict-Transport-Security max-age (0 = off)", apply: duration("hsts", func(s *settings) *time.Duration { return &s.TLS.HSTS })},
	}
}

// offIfZero maps a documented "0 = off" onto a Config where zero means the default and a
// negative value means off.
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// shareOrOff maps a documented "0 = off" share onto proxy.Config, where zero means the default.
func shareOrOff(f float64) float64 {
	if f == 0 {
		return -1
	}
	return f
}

// perIPSetting maps the documented "0 = unlimited" of max_connections_per_ip onto pusher.Config,
// where zero means the default.
func perIPSetting(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
