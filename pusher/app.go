package pusher

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// AppConfig is one Pusher app. The YAML keys are Reverb's option names (config/reverb.php), so
// a Reverb user recognises them.
type AppConfig struct {
	ID     string `yaml:"id"`
	Key    string `yaml:"key"`
	Secret string `yaml:"secret"`
	// Disabled refuses connections with 4003.
	Disabled bool `yaml:"disabled"`
	// RequireTLS refuses plain ws:// with 4000; pusher-js then retries over wss://.
	RequireTLS bool `yaml:"require_tls"`
	// MaxConnections caps the app's sockets (4004); zero means unlimited.
	MaxConnections int `yaml:"max_connections"`
	// MaxMessageSize is the largest inbound WebSocket message; larger ones close with 1009.
	MaxMessageSize int `yaml:"max_message_size"`
	// ActivityTimeout (seconds) is sent in connection_established; pusher-js pings after it.
	ActivityTimeout int `yaml:"activity_timeout"`
	// PingInterval (seconds) of silence before the server pings; 30 s more closes with 4201.
	PingInterval int `yaml:"ping_interval"`
	// AllowedOrigins are Origin host patterns with * wildcards (§1.2); ["*"] allows all.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AcceptClientEventsFrom is members or all (either way the sender must be subscribed to the
	// channel), or none (§6).
	AcceptClientEventsFrom string `yaml:"accept_client_events_from"`
	// ClientEventRate is client events per second per socket (4301 above it).
	ClientEventRate int `yaml:"client_event_rate"`
	// MaxPresenceMembers caps distinct users per presence channel; zero means unlimited.
	MaxPresenceMembers int `yaml:"max_presence_members"`
	// MaxPresenceUserBytes caps a member's user_info JSON; zero means unlimited.
	MaxPresenceUserBytes int `yaml:"max_presence_user_bytes"`
	// MaxEventBytes caps an API event's data (413 above it).
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MaxRequestBytes caps an API request body (413 above it).
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// CacheTTL (seconds) is how long a cache channel remembers its last event.
	CacheTTL int `yaml:"cache_ttl"`
	// SubscriptionCount sends pusher_internal:subscription_count on non-presence channels (§5.8).
	SubscriptionCount bool `yaml:"subscription_count"`
	// AuthorizationTimeout (seconds) closes sockets that neither sign in nor join a private or
	// presence channel in time (4009, §7); zero disables it.
	AuthorizationTimeout int `yaml:"authorization_timeout"`
	// Webhooks are the targets this app's channel events are POSTed to (§9).
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// WebhookDelay is how long channel_vacated and member_removed wait for a re-subscription
	// that cancels them (a page reload), Pusher's "up to 3 s". Default 3 s.
	WebhookDelay time.Duration `yaml:"webhook_delay"`
	// MaxSubscriptionsPerConnection caps one socket's channels (default 100; a page never needs
	// that many), so one socket cannot create channels without bound.
	MaxSubscriptionsPerConnection int `yaml:"max_subscriptions_per_connection"`
	// MaxChannels caps the app's occupied channels on this node; zero means unlimited.
	MaxChannels int `yaml:"max_channels"`
	// SubscribeRate is pusher:subscribe messages per second per socket, with a burst of
	// MaxSubscriptionsPerConnection so a page joins all its channels at once (default 10).
	SubscribeRate int `yaml:"subscribe_rate"`
	// MaxProtocolErrors closes a socket with 4009 after this many malformed or unknown frames
	// (default 20): a working client sends none.
	MaxProtocolErrors int `yaml:"max_protocol_errors"`
	// RateLimiting is Reverb 1.9's per-connection message limit (REVERB_APP_RATE_LIMITING_*).
	RateLimiting RateLimitConfig `yaml:"rate_limiting"`
}

// RateLimitConfig is Reverb's rate_limiting block: at most MaxAttempts client messages in a
// window of DecaySeconds that starts with the first one (Laravel's RateLimiter). Messages over
// it get pusher:error 4301 and are not processed; with TerminateOnLimit the socket is closed.
type RateLimitConfig struct {
	Enabled          bool `yaml:"enabled"`
	MaxAttempts      int  `yaml:"max_attempts"`       // default 60
	DecaySeconds     int  `yaml:"decay_seconds"`      // default 60
	TerminateOnLimit bool `yaml:"terminate_on_limit"` // close with 4100 after the 4301
}

// Config is the Pusher side of frontdoor.
type Config struct {
	// PathPrefix mounts /app and /apps under it ("" for none). API signatures are verified
	// against the unprefixed path, as the SDKs sign it (§8.2).
	PathPrefix string
	Apps       []AppConfig
	// MaxConnections caps sockets across all apps (4100); zero means unlimited.
	MaxConnections int
	// QueueBytes and QueueFrames bound each socket's send queue; a socket over either is closed
	// as a slow consumer with 4100. Zero means 1 MiB and 4096 frames.
	QueueBytes  int
	QueueFrames int
	// WebhookLocal serves webhook targets given as a path (/pusher/webhook): cmd/frontdoor
	// passes the PHP front door, so the app gets them without a trip through the public
	// listener. Nil refuses path targets.
	WebhookLocal fasthttp.RequestHandler `yaml:"-"`
	// WebhookHost is the Host header of webhooks delivered through WebhookLocal (default localhost).
	WebhookHost string `yaml:"-"`
	// WebhookTimeout bounds one delivery attempt (default 10 s); WebhookRetryFor is how long a
	// batch is retried before it is dropped (default 5 minutes, as Pusher).
	WebhookTimeout, WebhookRetryFor time.Duration `yaml:"-"`
	// MaxConnectionsPerIP caps sockets from one client address (an IPv6 client's /64), refused
	// with 4100. Zero means 1000; negative means unlimited.
	MaxConnectionsPerIP int
	// ClientIP is the visitor's address behind trusted proxies (cmd/frontdoor passes the
	// proxy's resolution, so a balancer's address is not everyone's); nil uses the TCP peer.
	// It feeds the per-address cap and the logs.
	ClientIP func(*fasthttp.RequestCtx) netip.Addr `yaml:"-"`
	// capLoopback applies MaxConnectionsPerIP to loopback clients too (tests; see Server).
	capLoopback bool
	// PongTimeout is how long a pinged socket may stay silent before it is closed with 4201
	// (§3; default 30 s, the documented recommendation).
	PongTimeout time.Duration `yaml:"-"`
	// Broker joins this server to other nodes (pusher/redis); nil keeps it a single node.
	// It is started by NewServer, closed by Shutdown, and not changed by Reload.
	Broker Broker `yaml:"-"`
	// AuthRate, when set, is how many channel authorizations per second the app's PHP answers
	// (cmd/frontdoor passes the proxy's estimate). Shutdown spreads its 4200 closes so the
	// clients' re-authorizations arrive at about that rate (pacing.go); nil spreads them over 1 s.
	AuthRate func() float64 `yaml:"-"`
}

// Defaults Reverb and Pusher document (§1.3, §3, §6, §8.7).
const (
	defaultMaxMessageSize  = 10000
	defaultActivityTimeout = 30
	defaultPingInterval    = 60
	defaultClientEventRate = 10
	defaultMaxEventBytes   = 10240
	defaultMaxRequestBytes = 1 << 20
	defaultCacheTTL        = 1800
	defaultPongTimeout     = 30 * time.Second

	defaultMaxSubscriptions    = 100
	defaultSubscribeRate       = 10
	defaultMaxProtocolErrors   = 20
	defaultRateLimitAttempts   = 60 // Reverb's REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS
	defaultRateLimitDecay      = 60 // Reverb's REVERB_APP_RATE_LIMIT_DECAY_SECONDS
	defaultMaxConnectionsPerIP = 1000
)

// withDefaults fills zero fields with the documented defaults.
func (a AppConfig) withDefaults() AppConfig {
	setDefault := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDefault(&a.MaxMessageSize, defaultMaxMessageSize)
	setDefault(&a.ActivityTimeout, defaultActivityTimeout)
	setDefault(&a.PingInterval, defaultPingInterval)
	setDefault(&a.ClientEventRate, defaultClientEventRate)
	setDefault(&a.MaxEventBytes, defaultMaxEventBytes)
	setDefault(&a.MaxRequestBytes, defaultMaxRequestBytes)
	setDefault(&a.CacheTTL, defaultCacheTTL)
	setDefault(&a.MaxSubscriptionsPerConnection, defaultMaxSubscriptions)
	setDefault(&a.SubscribeRate, defaultSubscribeRate)
	setDefault(&a.MaxProtocolErrors, defaultMaxProtocolErrors)
	setDefault(&a.RateLimiting.MaxAttempts, defaultRateLimitAttempts)
	setDefault(&a.RateLimiting.DecaySeconds, defaultRateLimitDecay)
	if len(a.AllowedOrigins) == 0 {
		a.AllowedOrigins = []string{"*"}
	}
	if a.AcceptClientEventsFrom == "" {
		a.AcceptClientEventsFrom = "members"
	}
	if a.WebhookDelay == 0 {
		a.WebhookDelay = 3 * time.Second
	}
	return a
}

// Validate names the first bad key of every app and of the server settings.
func (c *Config) Validate() error {
	var errs []error
	if c.PathPrefix != "" && (!strings.HasPrefix(c.PathPrefix, "/") || strings.HasSuffix(c.PathPrefix, "/")) {
		errs = append(errs, fmt.Errorf("path_prefix: invalid value %q: want a path like /ws (leading slash, no trailing slash)", c.PathPrefix))
	}
	if c.MaxConnections < 0 || c.QueueBytes < 0 || c.QueueFrames < 0 {
		errs = append(errs, errors.New("max_connections, queue_bytes and queue_frames: must be ≥ 0"))
	}
	if len(c.Apps) == 0 {
		errs = append(errs, errors.New("apps: none configured; set REVERB_APP_ID/KEY/SECRET or --app-id/--app-key/--app-secret"))
	}
	ids, keys := map[string]bool{}, map[string]bool{}
	for i, a := range c.Apps {
		at := func(key string) string { return fmt.Sprintf("apps[%d].%s", i, key) }
		switch {
		case a.ID == "":
			errs = append(errs, fmt.Errorf("%s: empty; set it (REVERB_APP_ID, --app-id)", at("id")))
		case ids[a.ID]:
			errs = append(errs, fmt.Errorf("%s: %q is used by two apps", at("id"), a.ID))
		case strings.ContainsAny(a.ID, "/?#"):
			errs = append(errs, fmt.Errorf("%s: invalid value %q: it appears in URL paths, so no / ? #", at("id"), a.ID))
		}
		switch {
		case a.Key == "":
			errs = append(errs, fmt.Errorf("%s: empty; set it (REVERB_APP_KEY, --app-key)", at("key")))
		case keys[a.Key]:
			errs = append(errs, fmt.Errorf("%s: %q is used by two apps", at("key"), a.Key))
		case strings.ContainsAny(a.Key, "/?#:"):
			errs = append(errs, fmt.Errorf("%s: invalid value %q: it may not contain / ? # or a colon", at("key"), a.Key))
		}
		if a.Secret == "" {
			errs = append(errs, fmt.Errorf("%s: empty; set it (REVERB_APP_SECRET, --app-secret)", at("secret")))
		}
		ids[a.ID], keys[a.Key] = true, true
		for _, f := range []struct {
			name string
			v    int
		}{{"max_connections", a.MaxConnections}, {"max_message_size", a.MaxMessageSize}, {"activity_timeout", a.ActivityTimeout},
			{"ping_interval", a.PingInterval}, {"client_event_rate", a.ClientEventRate}, {"max_presence_members", a.MaxPresenceMembers},
			{"max_presence_user_bytes", a.MaxPresenceUserBytes}, {"max_event_bytes", a.MaxEventBytes}, {"max_request_bytes", a.MaxRequestBytes},
			{"cache_ttl", a.CacheTTL}, {"authorization_timeout", a.AuthorizationTimeout},
			{"max_subscriptions_per_connection", a.MaxSubscriptionsPerConnection}, {"max_channels", a.MaxChannels},
			{"subscribe_rate", a.SubscribeRate}, {"max_protocol_errors", a.MaxProtocolErrors},
			{"rate_limiting.max_attempts", a.RateLimiting.MaxAttempts}, {"rate_limiting.decay_seconds", a.RateLimiting.DecaySeconds}} {
			if f.v < 0 {
				errs = append(errs, fmt.Errorf("%s: invalid value %d: want ≥ 0", at(f.name), f.v))
			}
		}
		switch a.AcceptClientEventsFrom {
		case "", "members", "all", "none":
		default:
			errs = append(errs, fmt.Errorf("%s: invalid value %q: want members, all or none", at("accept_client_events_from"), a.AcceptClientEventsFrom))
		}
		for j, w := range a.Webhooks {
			if err := w.validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", at(fmt.Sprintf("webhooks[%d]", j)), err))
			}
		}
		if a.WebhookDelay < 0 {
			errs = append(errs, fmt.Errorf("%s: invalid value %s: want ≥ 0", at("webhook_delay"), a.WebhookDelay))
		}
		for _, o := range a.AllowedOrigins {
			if _, err := path.Match(o, "x"); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid pattern %q", at("allowed_origins"), o))
			}
		}
	}
	return errors.Join(errs...)
}

// App is one configured app at run time: its settings (swapped atomically on reload), its hub,
// and its counters.
type App struct {
	cfg atomic.Pointer[AppConfig]
	hub *Hub

	conns atomic.Int64

	// sockets holds every open socket: the janitor walks it, terminate_connections searches it.
	sockets sync.Map // *Socket → struct{}

	usersMu  sync.Mutex
	signedIn map[string]map[*Socket]struct{} // user id → sockets signed in as that user (§7)
	watchers map[string]map[*Socket]struct{} // user id → sockets watching that user (§7 watchlist)

	stats appCounters
}

func newApp(cfg AppConfig) *App {
	a := &App{hub: newHub(), signedIn: map[string]map[*Socket]struct{}{}}
	c := cfg.withDefaults()
	a.cfg.Store(&c)
	return a
}

func (a *App) config() *AppConfig { return a.cfg.Load() }

// originAllowed matches the Origin header's host against the app's patterns (§1.2): "*" allows
// everything; otherwise a missing Origin (a non-browser client) is refused.
func (a *App) originAllowed(origin string) bool {
	pats := a.config().AllowedOrigins
	for _, p := range pats {
		if p == "*" {
			return true
		}
	}
	if origin == "" {
		return false
	}
	host := origin
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(host, "]") {
		host = h
	}
	host = strings.ToLower(host)
	for _, p := range pats {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return true
		}
	}
	return false
}

// addSignedIn reports whether s is the user's first signed-in socket on this node.
func (a *App) addSignedIn(user string, s *Socket) bool {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	m := a.signedIn[user]
	if m == nil {
		m = map[*Socket]struct{}{}
		a.signedIn[user] = m
	}
	m[s] = struct{}{}
	return len(m) == 1
}

// removeSignedIn reports whether s was the user's last signed-in socket on this node.
func (a *App) removeSignedIn(user string, s *Socket) bool {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	if m := a.signedIn[user]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(a.signedIn, user)
			return true
		}
	}
	return false
}

func (a *App) signedInSockets(user string) []*Socket {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	out := make([]*Socket, 0, len(a.signedIn[user]))
	for s := range a.signedIn[user] {
		out = append(out, s)
	}
	return out
}
