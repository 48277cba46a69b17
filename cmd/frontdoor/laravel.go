package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
	"github.com/frontdoorhq/frontdoor/pusher"
)

// laravelEnv answers a Laravel variable the way Laravel itself would: a variable in the process
// environment beats the .env file (Laravel's env repository is immutable), and within the file
// the last duplicate wins (laravel-config.md §1).
type laravelEnv struct {
	file   *dotenv.File // nil when no .env was loaded
	lookup func(string) (string, bool)
}

// get returns the value and where it came from ("REVERB_APP_KEY (environment)" or ".env:12").
func (e laravelEnv) get(key string) (value, source string, ok bool) {
	if v, ok := e.lookup(key); ok {
		return v, key + " (environment)", true
	}
	if e.file != nil {
		if v, line, ok := e.file.Get(key); ok {
			return v, fmt.Sprintf("%s:%d %s", e.file.Path, line, key), true
		}
	}
	return "", "", false
}

// applyLaravel maps the variables Reverb reads (laravel-config.md §2) onto the settings. It is the
// layer that lets a team point frontdoor at their existing .env and change nothing else.
func (s *settings) applyLaravel(env laravelEnv) error {
	if env.file != nil {
		for key, lines := range env.file.Duplicates() {
			v, _, _ := env.file.Get(key)
			s.notices = append(s.notices, fmt.Sprintf("%s: %s is set %d times (lines %s); the last one wins, as in Laravel: %q",
				env.file.Path, key, len(lines), joinInts(lines), redactIfSecret(key, v)))
		}
	}

	// The app: REVERB_APP_* as Reverb's config/reverb.php reads them; PUSHER_APP_* when a team
	// still runs the pusher broadcaster against a self-hosted server.
	prefix := "REVERB_APP_"
	if _, _, ok := env.get("REVERB_APP_ID"); !ok {
		if _, _, ok := env.get("PUSHER_APP_ID"); ok {
			prefix = "PUSHER_APP_"
		}
	}
	var app *pusher.AppConfig // the one app a Laravel .env describes
	if id, _, ok := env.get(prefix + "ID"); ok {
		app = s.app(id)
		if v, _, ok := env.get(prefix + "KEY"); ok {
			app.Key = v
		}
		if v, _, ok := env.get(prefix + "SECRET"); ok {
			app.Secret = v
		}
	} else if _, src, ok := env.get("REVERB_APP_KEY"); ok {
		return fmt.Errorf("%s: REVERB_APP_KEY is set but REVERB_APP_ID is not; set REVERB_APP_ID too (the broadcaster posts to /apps/{REVERB_APP_ID}/events)", src)
	}

	if app != nil {
		if err := applyLaravelApp(app, env); err != nil {
			return err
		}
	}
	// The balancer in front is part of the deployment's .env like the rest.
	if v, _, ok := env.get("FRONTDOOR_TRUSTED_PROXIES"); ok {
		s.Proxy.TrustedProxies = splitList(v)
	}
	if v, _, ok := env.get("REVERB_SERVER_PATH"); ok {
		s.Pusher.PathPrefix = v
	}
	// REVERB_SERVER_HOST/PORT is where reverb:start bound. frontdoor takes it as its plain
	// listener, so `php artisan reverb:start` and `frontdoor serve` answer on the same address.
	host, _, hostOK := env.get("REVERB_SERVER_HOST")
	port, portSrc, portOK := env.get("REVERB_SERVER_PORT")
	if hostOK || portOK {
		if !hostOK || host == "" {
			host = "0.0.0.0" // Reverb's default
		}
		if !portOK || port == "" {
			port = "8080"
		} else if _, err := parsePositiveInt(portSrc, port); err != nil {
			return err
		}
		s.Listen = net.JoinHostPort(host, port)
	}
	if v, _, ok := env.get("REVERB_SCALING_ENABLED"); ok && isTrue(v) {
		s.Redis.URL = laravelRedisURL(env)
		if v, _, ok := env.get("REVERB_SCALING_CHANNEL"); ok && v != "" {
			s.Redis.Prefix = v
		}
	}
	return nil
}

// laravelRedisURL builds the Redis URL Laravel's default connection uses (config/database.php
// "redis.default"): REDIS_URL when set, else REDIS_HOST/PORT/USERNAME/PASSWORD/DB, with
// REDIS_SCHEME=tls for TLS. Laravel reads the literal "null" as no value.
func laravelRedisURL(env laravelEnv) string {
	get := func(key, def string) string {
		v, _, ok := env.get(key)
		if !ok || v == "" || strings.EqualFold(v, "null") || v == "(null)" {
			return def
		}
		return v
	}
	if u := get("REDIS_URL", ""); u != "" {
		return u
	}
	scheme := "redis"
	if s := get("REDIS_SCHEME", "tcp"); s == "tls" || s == "rediss" {
		scheme = "rediss"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(get("REDIS_HOST", "127.0.0.1"), get("REDIS_PORT", "6379")), Path: "/" + get("REDIS_DB", "0")}
	if pass := get("REDIS_PASSWORD", ""); pass != "" {
		u.User = url.UserPassword(get("REDIS_USERNAME", ""), pass)
	} else if user := get("REDIS_USERNAME", ""); user != "" {
		u.User = url.User(user)
	}
	return u.String()
}

// applyLaravelApp sets the per-app options config/reverb.php reads from REVERB_APP_*.
func applyLaravelApp(app *pusher.AppConfig, env laravelEnv) error {
	ints := []struct {
		key string
		dst *int
	}{
		{"REVERB_APP_PING_INTERVAL", &app.PingInterval},
		{"REVERB_APP_ACTIVITY_TIMEOUT", &app.ActivityTimeout},
		{"REVERB_APP_MAX_CONNECTIONS", &app.MaxConnections},
		{"REVERB_APP_MAX_MESSAGE_SIZE", &app.MaxMessageSize},
		{"REVERB_MAX_REQUEST_SIZE", &app.MaxRequestBytes},
		{"REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS", &app.RateLimiting.MaxAttempts},
		{"REVERB_APP_RATE_LIMIT_DECAY_SECONDS", &app.RateLimiting.DecaySeconds},
	}
	for _, it := range ints {
		v, src, ok := env.get(it.key)
		if !ok || v == "" {
			continue
		}
		n, err := parsePositiveInt(src, v)
		if err != nil {
			return err
		}
		*it.dst = n
	}
	// Reverb 1.9's per-connection message limit (config/reverb.php apps.*.rate_limiting).
	for _, b := range []struct {
		key string
		dst *bool
	}{
		{"REVERB_APP_RATE_LIMITING_ENABLED", &app.RateLimiting.Enabled},
		{"REVERB_APP_RATE_LIMIT_TERMINATE", &app.RateLimiting.TerminateOnLimit},
	} {
		if v, _, ok := env.get(b.key); ok && v != "" {
			*b.dst = isTrue(v)
		}
	}
	if v, src, ok := env.get("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM"); ok && v != "" {
		switch v {
		case "members", "all", "none":
		default:
			return badValue(src, v, "want members, all or none")
		}
		app.AcceptClientEventsFrom = v
	}
	// Webhooks (Reverb has none): targets for the .env app, with optional filters.
	if v, _, ok := env.get("FRONTDOOR_WEBHOOK_URL"); ok && v != "" {
		events, _, _ := env.get("FRONTDOOR_WEBHOOK_EVENTS")
		prefix, _, _ := env.get("FRONTDOOR_WEBHOOK_CHANNEL_PREFIX")
		for _, u := range splitList(v) {
			app.Webhooks = append(app.Webhooks, pusher.WebhookConfig{URL: u, Events: splitList(events), ChannelPrefix: prefix})
		}
	}
	// Reverb keeps allowed_origins in config/reverb.php only; frontdoor reads a comma list.
	for _, key := range []string{"REVERB_ALLOWED_ORIGINS", "FRONTDOOR_ALLOWED_ORIGINS"} {
		if v, _, ok := env.get(key); ok && v != "" {
			app.AllowedOrigins = splitList(v)
		}
	}
	return nil
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.Trim(v, "()")) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

// redactIfSecret keeps secrets out of logs: a duplicate notice shows which value won, not the secret.
func redactIfSecret(key, v string) string {
	if strings.Contains(key, "SECRET") || strings.Contains(key, "PASSWORD") {
		if v == "" {
			return ""
		}
		return "(redacted)"
	}
	return v
}
