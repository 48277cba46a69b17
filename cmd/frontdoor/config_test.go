package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env builds a lookup from pairs, standing in for the process environment.
func env(pairs ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, args []string, lookup func(string) (string, bool)) (settings, error) {
	t.Helper()
	// Run from an empty directory so a developer's ./.env never leaks into a test.
	t.Chdir(t.TempDir())
	return loadSettings(args, lookup, io.Discard)
}

func TestDefaultsGenerateDevApp(t *testing.T) {
	s, err := load(t, nil, env())
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != "127.0.0.1:8080" || s.Admin != "127.0.0.1:9601" || s.TLS.Mode != "off" {
		t.Fatalf("defaults: listen=%q admin=%q tls=%q", s.Listen, s.Admin, s.TLS.Mode)
	}
	if !s.devCredentials || len(s.Pusher.Apps) != 1 {
		t.Fatalf("want one generated app, got %+v", s.Pusher.Apps)
	}
	a := s.Pusher.Apps[0]
	if len(a.Key) != 20 || len(a.Secret) != 20 || len(a.ID) != 6 {
		t.Fatalf("generated credentials not in reverb:install's shape: %+v", a)
	}
}

// TestPrecedence walks the documented order: defaults < YAML < .env < FRONTDOOR_* < flags.
func TestPrecedence(t *testing.T) {
	yml := writeFile(t, "frontdoor.yaml", "listen: 127.0.0.1:1001\napps:\n  - {id: y, key: ykey, secret: ysecret}\n")
	dotenv := writeFile(t, ".env", "REVERB_SERVER_HOST=127.0.0.1\nREVERB_SERVER_PORT=1002\nREVERB_APP_ID=e\nREVERB_APP_KEY=ekey\nREVERB_APP_SECRET=esecret\n")
	cases := []struct {
		name   string
		args   []string
		env    []string
		listen string
	}{
		{"yaml", []string{"--config", yml, "--env-file", ""}, nil, "127.0.0.1:1001"},
		{"env file beats yaml", []string{"--config", yml, "--env-file", dotenv}, nil, "127.0.0.1:1002"},
		{"FRONTDOOR_ beats env file", []string{"--config", yml, "--env-file", dotenv}, []string{"FRONTDOOR_LISTEN", "127.0.0.1:1003"}, "127.0.0.1:1003"},
		{"flag beats FRONTDOOR_", []string{"--config", yml, "--env-file", dotenv, "--listen", "127.0.0.1:1004"}, []string{"FRONTDOOR_LISTEN", "127.0.0.1:1003"}, "127.0.0.1:1004"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := load(t, c.args, env(c.env...))
			if err != nil {
				t.Fatal(err)
			}
			if s.Listen != c.listen {
				t.Fatalf("listen = %q, want %q", s.Listen, c.listen)
			}
		})
	}
}

func TestLaravelEnvApp(t *testing.T) {
	dotenv := writeFile(t, ".env", strings.Join([]string{
		"REVERB_APP_ID=123456",
		"REVERB_APP_KEY=first",
		"REVERB_APP_KEY=laterwins",
		`REVERB_APP_SECRET="s3cret"`,
		"REVERB_APP_MAX_CONNECTIONS=7",
		"REVERB_APP_ACTIVITY_TIMEOUT=45",
		"REVERB_SERVER_PATH=/ws",
		`REVERB_ALLOWED_ORIGINS="app.example.com, *.example.com"`,
	}, "\n")+"\n")
	s, err := load(t, []string{"--env-file", dotenv}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pusher.Apps) != 1 {
		t.Fatalf("apps = %+v", s.Pusher.Apps)
	}
	a := s.Pusher.Apps[0]
	if a.ID != "123456" || a.Key != "laterwins" || a.Secret != "s3cret" || a.MaxConnections != 7 || a.ActivityTimeout != 45 {
		t.Fatalf("app from .env = %+v", a)
	}
	if got := strings.Join(a.AllowedOrigins, "|"); got != "app.example.com|*.example.com" {
		t.Fatalf("origins = %q", got)
	}
	if s.Pusher.PathPrefix != "/ws" {
		t.Fatalf("path prefix = %q", s.Pusher.PathPrefix)
	}
	if s.devCredentials {
		t.Fatal("dev credentials generated although the .env names an app")
	}
	var dup bool
	for _, n := range s.notices {
		if strings.Contains(n, "REVERB_APP_KEY") && strings.Contains(n, "laterwins") {
			dup = true
		}
	}
	if !dup {
		t.Fatalf("duplicate REVERB_APP_KEY not reported: %q", s.notices)
	}
}

// Laravel's env repository is immutable: the process environment beats the .env file.
func TestProcessEnvBeatsDotenv(t *testing.T) {
	dotenv := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=filekey\nREVERB_APP_SECRET=filesecret\n")
	s, err := load(t, []string{"--env-file", dotenv}, env("REVERB_APP_KEY", "envkey"))
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Pusher.Apps[0]; a.Key != "envkey" || a.Secret != "filesecret" {
		t.Fatalf("app = %+v", a)
	}
}

func TestAppFlagsOverrideDotenvApp(t *testing.T) {
	dotenv := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=filekey\nREVERB_APP_SECRET=filesecret\n")
	s, err := load(t, []string{"--env-file", dotenv, "--app-key", "flagkey"}, env())
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Pusher.Apps[0]; len(s.Pusher.Apps) != 1 || a.ID != "1" || a.Key != "flagkey" || a.Secret != "filesecret" {
		t.Fatalf("apps = %+v", s.Pusher.Apps)
	}
}

func TestYAMLSeveralApps(t *testing.T) {
	yml := writeFile(t, "f.yaml", `
apps:
  - id: one
    key: key-one
    secret: secret-one
    max_connections: 2
    allowed_origins: ["laravel.test"]
  - id: two
    key: key-two
    secret: secret-two
    disabled: true
`)
	s, err := load(t, []string{"--config", yml}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pusher.Apps) != 2 || s.Pusher.Apps[0].MaxConnections != 2 || !s.Pusher.Apps[1].Disabled {
		t.Fatalf("apps = %+v", s.Pusher.Apps)
	}
}

// Bad values stop start-up with a message naming the key, the value and what would be valid.
func TestInvalidValuesNameKeyAndValue(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   []string
		file  string
		wants []string
	}{
		{"flag", []string{"--max-body", "lots"}, nil, "", []string{"--max-body", `"lots"`, "byte count"}},
		{"duration", []string{"--shutdown-timeout", "soon"}, nil, "", []string{"--shutdown-timeout", `"soon"`, "duration"}},
		{"env var", nil, []string{"FRONTDOOR_LOG_FORMAT", "xml"}, "", []string{"log-format", `"xml"`, "json"}},
		{"dotenv", nil, nil, "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nREVERB_APP_MAX_CONNECTIONS=many\n", []string{".env:4", "REVERB_APP_MAX_CONNECTIONS", `"many"`, "whole number"}},
		{"listen", []string{"--listen", "8080"}, nil, "", []string{"listen", `"8080"`, "host:port"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append(args, "--env-file", writeFile(t, ".env", c.file))
			}
			_, err := load(t, args, env(c.env...))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestYAMLUnknownKeyIsAnError(t *testing.T) {
	yml := writeFile(t, "f.yaml", "listen: 127.0.0.1:1\nlisten_addr: 127.0.0.1:2\n")
	_, err := load(t, []string{"--config", yml}, env())
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "listen_addr") {
		t.Fatalf("err = %v", err)
	}
}

func TestDomainTurnsOnAutoTLS(t *testing.T) {
	s, err := load(t, []string{"--domain", "app.example.com", "--acme-email", "ops@example.com", "--cert-cache", t.TempDir()}, env())
	if err != nil {
		t.Fatal(err)
	}
	if s.TLS.Mode != "auto" || s.Listen != "" || s.TLS.HTTPSAddr != ":443" {
		t.Fatalf("tls=%q listen=%q https=%q", s.TLS.Mode, s.Listen, s.TLS.HTTPSAddr)
	}
}

// Reverb's scaling switch brings Laravel's default Redis connection with it.
func TestLaravelScalingUsesRedisSettings(t *testing.T) {
	cases := []struct {
		name string
		env  string
		want string
	}{
		{"host and port", "REDIS_HOST=10.0.0.5\nREDIS_PORT=6380\nREDIS_PASSWORD=null\n", "redis://10.0.0.5:6380/0"},
		{"password, db, tls", "REDIS_HOST=cache.internal\nREDIS_PASSWORD=p@ss\nREDIS_DB=2\nREDIS_SCHEME=tls\n", "rediss://:p%40ss@cache.internal:6379/2"},
		{"url wins", "REDIS_URL=redis://u:pw@r.example:6379/1\nREDIS_HOST=ignored\n", "redis://u:pw@r.example:6379/1"},
		{"defaults", "", "redis://127.0.0.1:6379/0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dotenv := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nREVERB_SCALING_ENABLED=true\nREVERB_SCALING_CHANNEL=shop\n"+c.env)
			s, err := load(t, []string{"--env-file", dotenv}, env())
			if err != nil {
				t.Fatal(err)
			}
			if s.Redis.URL != c.want || s.Redis.Prefix != "shop" {
				t.Fatalf("redis = %+v, want %s with prefix shop", s.Redis, c.want)
			}
		})
	}
	// The flag beats the .env, and a bad URL is named.
	dotenv := writeFile(t, ".env", "REVERB_SCALING_ENABLED=true\n")
	s, err := load(t, []string{"--env-file", dotenv, "--redis", "redis://127.0.0.1:7000/3"}, env())
	if err != nil || s.Redis.URL != "redis://127.0.0.1:7000/3" {
		t.Fatalf("flag: %+v %v", s.Redis, err)
	}
	if _, err := load(t, []string{"--redis", "http://nope"}, env()); err == nil || !strings.Contains(err.Error(), "http://nope") {
		t.Fatalf("bad redis URL: %v", err)
	}
}

func TestWebhookSettings(t *testing.T) {
	dotenv := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\n"+
		"FRONTDOOR_WEBHOOK_URL=/pusher/webhook\nFRONTDOOR_WEBHOOK_EVENTS=channel_occupied,channel_vacated\nFRONTDOOR_WEBHOOK_CHANNEL_PREFIX=private-\n")
	s, err := load(t, []string{"--env-file", dotenv, "--webhook", "https://hooks.example.com/pusher"}, env())
	if err != nil {
		t.Fatal(err)
	}
	w := s.Pusher.Apps[0].Webhooks
	if len(w) != 2 || w[0].URL != "/pusher/webhook" || strings.Join(w[0].Events, ",") != "channel_occupied,channel_vacated" ||
		w[0].ChannelPrefix != "private-" || w[1].URL != "https://hooks.example.com/pusher" || len(w[1].Events) != 0 {
		t.Fatalf("webhooks = %+v", w)
	}
	if _, err := load(t, []string{"--env-file", dotenv, "--webhook", "ftp://x"}, env()); err == nil || !strings.Contains(err.Error(), "ftp://x") {
		t.Fatalf("bad webhook url: %v", err)
	}
	bad := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nFRONTDOOR_WEBHOOK_URL=/h\nFRONTDOOR_WEBHOOK_EVENTS=channel_exploded\n")
	if _, err := load(t, []string{"--env-file", bad}, env()); err == nil || !strings.Contains(err.Error(), "channel_exploded") {
		t.Fatalf("bad event name: %v", err)
	}
}

// Sizes read as Laravel teams write them in Nginx and php.ini (64M), from a flag, FRONTDOOR_ env
// and YAML alike.
func TestMaxBodySizes(t *testing.T) {
	for in, want := range map[string]int64{"67108864": 64 << 20, "64M": 64 << 20, "64m": 64 << 20, "512K": 512 << 10,
		"1G": 1 << 30, "8MB": 8 << 20, "8MiB": 8 << 20, " 2M ": 2 << 20, "0": 0} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "lots", "-1", "1T", "1.5M", "99999999999G"} {
		if n, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) = %d, accepted", bad, n)
		}
	}
	s, err := load(t, []string{"--max-body", "16M"}, env())
	if err != nil || s.Proxy.MaxBody != 16<<20 {
		t.Fatalf("--max-body 16M: %d, %v", s.Proxy.MaxBody, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_MAX_BODY", "1G"))
	if err != nil || s.Proxy.MaxBody != 1<<30 {
		t.Fatalf("FRONTDOOR_MAX_BODY=1G: %d, %v", s.Proxy.MaxBody, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy:\n  max_body: 8M\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || s.Proxy.MaxBody != 8<<20 {
		t.Fatalf("yaml max_body: 8M: %d, %v", s.Proxy.MaxBody, err)
	}
	yml = writeFile(t, "frontdoor.yaml", "proxy:\n  max_body: 1048576\n")
	if s, err = load(t, []string{"--config", yml, "--env-file", ""}, env()); err != nil || s.Proxy.MaxBody != 1<<20 {
		t.Fatalf("yaml max_body: 1048576: %d, %v", s.Proxy.MaxBody, err)
	}
	yml = writeFile(t, "frontdoor.yaml", "proxy:\n  max_body: huge\n")
	if _, err = load(t, []string{"--config", yml, "--env-file", ""}, env()); err == nil || !strings.Contains(err.Error(), `"huge"`) {
		t.Fatalf("yaml max_body: huge: %v", err)
	}
}

// ACME certificates turn HSTS on (one year) unless a layer chose a value; 0 turns it off.
func TestACMEDefaultsToHSTS(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  []string
		yaml string
		want time.Duration
	}{
		{"acme", []string{"--domain", "app.example.com"}, nil, "", 365 * 24 * time.Hour},
		{"acme, flag off", []string{"--domain", "app.example.com", "--hsts", "0"}, nil, "", 0},
		{"acme, env", []string{"--domain", "app.example.com"}, []string{"FRONTDOOR_HSTS", "1h"}, "", time.Hour},
		{"acme, yaml off", []string{"--domain", "app.example.com"}, nil, "tls:\n  hsts: 0s\n", 0},
		{"self-signed", []string{"--tls", "self-signed"}, nil, "", 0},
		{"plain", nil, nil, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.yaml != "" {
				args = append([]string{"--config", writeFile(t, "f.yaml", c.yaml)}, args...)
			}
			s, err := load(t, args, env(c.env...))
			if err != nil {
				t.Fatal(err)
			}
			if s.TLS.HSTS != c.want {
				t.Fatalf("hsts = %v, want %v", s.TLS.HSTS, c.want)
			}
		})
	}
}

// Reverb 1.9's rate limiting variables and the new per-socket limits reach the app; the limits
// are reachable from YAML, FRONTDOOR_* and flags too.
func TestRateLimitAndSocketLimits(t *testing.T) {
	dotenv := writeFile(t, ".env", strings.Join([]string{
		"REVERB_APP_ID=1", "REVERB_APP_KEY=k", "REVERB_APP_SECRET=s",
		"REVERB_APP_RATE_LIMITING_ENABLED=true",
		"REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS=30",
		"REVERB_APP_RATE_LIMIT_DECAY_SECONDS=10",
		"REVERB_APP_RATE_LIMIT_TERMINATE=true",
	}, "\n")+"\n")
	s, err := load(t, []string{"--env-file", dotenv, "--max-channels", "500", "--max-connections-per-ip", "0"},
		env("FRONTDOOR_MAX_SUBSCRIPTIONS_PER_CONNECTION", "40", "FRONTDOOR_SUBSCRIBE_RATE", "5", "FRONTDOOR_MAX_PROTOCOL_ERRORS", "3"))
	if err != nil {
		t.Fatal(err)
	}
	a := s.Pusher.Apps[0]
	if rl := a.RateLimiting; !rl.Enabled || rl.MaxAttempts != 30 || rl.DecaySeconds != 10 || !rl.TerminateOnLimit {
		t.Fatalf("rate_limiting = %+v", rl)
	}
	if a.MaxChannels != 500 || a.MaxSubscriptionsPerConnection != 40 || a.SubscribeRate != 5 || a.MaxProtocolErrors != 3 {
		t.Fatalf("app = %+v", a)
	}
	if s.Pusher.MaxConnectionsPerIP >= 0 {
		t.Fatalf("--max-connections-per-ip 0 should be unlimited, got %d", s.Pusher.MaxConnectionsPerIP)
	}

	yml := writeFile(t, "f.yaml", `
max_connections_per_ip: 50
apps:
  - id: one
    key: k
    secret: s
    max_subscriptions_per_connection: 20
    rate_limiting: {enabled: true, max_attempts: 100}
`)
	s, err = load(t, []string{"--config", yml}, env())
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Pusher.Apps[0]; s.Pusher.MaxConnectionsPerIP != 50 || a.MaxSubscriptionsPerConnection != 20 || !a.RateLimiting.Enabled || a.RateLimiting.MaxAttempts != 100 {
		t.Fatalf("yaml: per-ip %d, app %+v", s.Pusher.MaxConnectionsPerIP, a)
	}
	if _, err := load(t, []string{"--env-file", dotenv, "--subscribe-rate", "-1"}, env()); err == nil || !strings.Contains(err.Error(), "--subscribe-rate") {
		t.Fatalf("bad value: %v", err)
	}
}

// The Redis outage bounds come from YAML, FRONTDOOR_* and flags, in that order of precedence, and a
// bad value is named.
func TestRedisOutageSettings(t *testing.T) {
	yml := writeFile(t, "frontdoor.yaml", "redis:\n  url: redis://127.0.0.1:6379/0\n  outage_queue: 500\n  outage_max_age: 5s\n")
	s, err := load(t, []string{"--config", yml}, env())
	if err != nil || s.Redis.OutageQueue != 500 || s.Redis.OutageMaxAge != 5*time.Second {
		t.Fatalf("yaml: %+v %v", s.Redis, err)
	}
	s, err = load(t, []string{"--config", yml, "--redis-outage-max-age", "1m"}, env("FRONTDOOR_REDIS_OUTAGE_QUEUE", "700"))
	if err != nil || s.Redis.OutageQueue != 700 || s.Redis.OutageMaxAge != time.Minute {
		t.Fatalf("env and flag: %+v %v", s.Redis, err)
	}
	if _, err := load(t, []string{"--config", yml, "--redis-outage-queue", "-1"}, env()); err == nil || !strings.Contains(err.Error(), "outage-queue") {
		t.Fatalf("negative queue: %v", err)
	}
}

// A certificate and key turn TLS on in files mode from every layer, as --domain turns on auto
// (issue #20: `serve --tls-cert c.pem --tls-key k.pem --https-addr …` served plain HTTP only).
func TestCertificateFilesTurnOnFilesTLS(t *testing.T) {
	yml := writeFile(t, "f.yaml", "tls:\n  cert: /etc/c.pem\n  key: /etc/k.pem\n  https_addr: 127.0.0.1:8443\n")
	cases := []struct {
		name   string
		args   []string
		env    []string
		listen string
	}{
		{"flags", []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--https-addr", "127.0.0.1:8443", "--http-addr", "127.0.0.1:8081"}, nil, ""},
		{"FRONTDOOR_", nil, []string{"FRONTDOOR_TLS_CERT", "c.pem", "FRONTDOOR_TLS_KEY", "k.pem"}, ""},
		{"yaml", []string{"--config", yml}, nil, "127.0.0.1:8080"},
		{"with --listen", []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--listen", "127.0.0.1:9"}, nil, "127.0.0.1:9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := load(t, c.args, env(c.env...))
			if err != nil {
				t.Fatal(err)
			}
			if s.TLS.Mode != "files" || s.Listen != c.listen {
				t.Fatalf("tls=%q listen=%q, want files and %q", s.TLS.Mode, s.Listen, c.listen)
			}
		})
	}
}

// A TLS-only setting never goes silently unused: with TLS off, start-up fails naming it.
func TestTLSSettingWithTLSOffIsAnError(t *testing.T) {
	// deploy/frontdoor.service sets the state directory for every start, TLS or not.
	if _, err := load(t, nil, env("FRONTDOOR_CERT_CACHE", "/var/lib/frontdoor/certs")); err != nil {
		t.Fatalf("the unit's FRONTDOOR_CERT_CACHE with TLS off: %v", err)
	}
	yml := writeFile(t, "f.yaml", "tls:\n  mode: \"off\"\n  https_addr: 127.0.0.1:8443\n")
	cases := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"explicit off", []string{"--tls", "off", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, nil, []string{"--tls-cert: set while TLS is off (--tls)", "--tls-key:"}},
		{"https-addr alone", []string{"--https-addr", "127.0.0.1:8443"}, nil, []string{"--https-addr: set while TLS is off"}},
		{"cert without key", []string{"--tls-cert", "c.pem"}, nil, []string{"--tls-cert: a certificate without --tls-key"}},
		{"FRONTDOOR_ off", []string{"--domain", "app.example.com"}, []string{"FRONTDOOR_TLS", "off"}, []string{"--domain: set while TLS is off (FRONTDOOR_TLS)"}},
		{"FRONTDOOR_ key alone", nil, []string{"FRONTDOOR_TLS_KEY", "k.pem"}, []string{"FRONTDOOR_TLS_KEY: a key without --tls-cert"}},
		{"yaml off", []string{"--config", yml}, nil, []string{"tls.https_addr: set while TLS is off (" + yml + " tls.mode)"}},
		{"cert-cache elsewhere", []string{"--cert-cache", "/srv/certs"}, nil, []string{"--cert-cache: set while TLS is off"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.args, env(c.env...))
			if err == nil {
				t.Fatal("started with a TLS setting and TLS off")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// FRONTDOOR_* settings written in the Laravel .env are not read from there: a TLS one is an error
// rather than a certificate silently not served, any other a start-up notice.
func TestFrontdoorVariablesInDotenv(t *testing.T) {
	dotenv := writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nFRONTDOOR_TLS_CERT=/etc/c.pem\nFRONTDOOR_LOG_LEVEL=debug\n")
	_, err := load(t, []string{"--env-file", dotenv}, env())
	if err == nil || !strings.Contains(err.Error(), ":4 FRONTDOOR_TLS_CERT is ignored") || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("err = %v", err)
	}
	dotenv = writeFile(t, ".env", "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nFRONTDOOR_LOG_LEVEL=debug\n")
	s, err := load(t, []string{"--env-file", dotenv}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.notices) != 1 || !strings.Contains(s.notices[0], ":4 FRONTDOOR_LOG_LEVEL is ignored") {
		t.Fatalf("notices = %q", s.notices)
	}
	// Exported as well (systemd EnvironmentFile=): it applies, nothing to say.
	s, err = load(t, []string{"--env-file", dotenv}, env("FRONTDOOR_LOG_LEVEL", "debug"))
	if err != nil || len(s.notices) != 0 || s.LogLevel != "debug" {
		t.Fatalf("err=%v notices=%q level=%q", err, s.notices, s.LogLevel)
	}
}

// --debug (FRONTDOOR_DEBUG, log.debug) logs at trace whatever log-level says, as
// `reverb:start --debug` shows every frame; a bad value names the flag.
func TestDebugMeansTrace(t *testing.T) {
	yml := writeFile(t, "frontdoor.yaml", "log: {level: warn, debug: true}\n")
	for _, c := range []struct {
		name   string
		args   []string
		lookup func(string) (string, bool)
		want   string
	}{
		{"default", nil, env(), "info"},
		{"flag", []string{"--debug", "--log-level", "error"}, env(), "trace"},
		{"env", nil, env("FRONTDOOR_DEBUG", "true"), "trace"},
		{"yaml", []string{"--config", yml}, env(), "trace"},
		{"flag off over yaml", []string{"--config", yml, "--debug=false"}, env(), "warn"},
	} {
		s, err := load(t, c.args, c.lookup)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := s.logLevel(); got != c.want {
			t.Errorf("%s: level %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := load(t, nil, env("FRONTDOOR_DEBUG", "maybe")); err == nil || !strings.Contains(err.Error(), "debug") {
		t.Fatalf("FRONTDOOR_DEBUG=maybe: %v", err)
	}
}
