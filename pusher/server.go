package pusher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// Server is frontdoor's Pusher server: the apps, their sockets, and the janitor that keeps them
// alive or closes them.
type Server struct {
	log         zerolog.Logger
	rlog        *rateLog                              // client-triggered lines (refusals, kicks), rate-limited per reason
	clientIP    func(*fasthttp.RequestCtx) netip.Addr // Config.ClientIP
	prefix      string
	maxConn     int
	queueBytes  int
	queueFrames int

	maxPerIP int // sockets per client address; 0: unlimited
	// capLoopback applies maxPerIP to loopback clients too. Off outside tests: behind a reverse
	// proxy on the same host, or under a local load test, loopback is many clients, not one.
	capLoopback bool
	ipMu        sync.Mutex
	perIP       map[string]int32 // ipKey → open sockets; entries go at zero

	mu      sync.RWMutex
	byKey   map[string]*App
	byAppID map[string]*App

	byID    sync.Map // socket id → *Socket, for socket_id exclusion (§8.3)
	conns   atomic.Int64
	nodeID  uint64
	counter atomic.Uint64

	flusher  *ws.Flusher
	upgrader *websocket.FastHTTPUpgrader
	stats    serverCounters

	webhooks    *webhooks
	pongTimeout time.Duration

	cluster cluster // the broker and every call to it
	// unsettled are members the broker lost for this node that a rebuild cut short had not
	// re-registered yet; the next Reconnected treats them as lost again (cluster_node.go).
	unsettled struct {
		sync.Mutex
		lost map[string]Membership
	}

	authRate func() float64 // Config.AuthRate: paces Shutdown's closes (pacing.go)
	// trace logs every frame and API call (trace.go): log level trace, fixed at NewServer (the
	// logger's level never changes afterwards), so the hot paths test one bool.
	trace bool

	closing  atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
}

// NewServer validates cfg and starts the janitor and the flusher pool.
func NewServer(cfg Config, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkWebhookPaths(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	s := &Server{
		log:         log,
		trace:       log.GetLevel() <= zerolog.TraceLevel && zerolog.GlobalLevel() <= zerolog.TraceLevel,
		rlog:        newRateLog(log),
		perIP:       map[string]int32{},
		prefix:      cfg.PathPrefix,
		maxConn:     cfg.MaxConnections,
		queueBytes:  cfg.QueueBytes,
		queueFrames: cfg.QueueFrames,
		// The first half of every socket_id: random per process, so ids stay unique across
		// restarts and nodes (§1.3). Kept below 10^9 for short ids.
		nodeID:  binary.BigEndian.Uint64(rnd[:]) % 1_000_000_000,
		flusher: ws.NewFlusher(0),
		stop:    make(chan struct{}),
		upgrader: &websocket.FastHTTPUpgrader{
			// The library's Conn and its reader are never read (ws reads the socket itself) but are
			// allocated on every upgrade: the smallest reader it allows, 125 bytes for a control frame.
			ReadBufferSize:    128,
			WriteBufferSize:   1024,
			WriteBufferPool:   &sync.Pool{},
			EnableCompression: false,
			// Origins are checked per app after the upgrade, so a refusal is a Pusher error the
			// client understands (4009) rather than an HTTP 403.
			CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
			Error:       refuseHandshake,
		},
	}
	s.flusher.OnPollError = func(err error) {
		s.log.Error().Err(err).Msg("epoll_wait failed: that poller's sockets were closed (clients reconnect); new sockets get read goroutines")
	}
	s.capLoopback, s.clientIP = cfg.capLoopback, cfg.ClientIP
	s.authRate = cfg.AuthRate
	switch {
	case cfg.MaxConnectionsPerIP == 0:
		s.maxPerIP = defaultMaxConnectionsPerIP
	case cfg.MaxConnectionsPerIP > 0:
		s.maxPerIP = cfg.MaxConnectionsPerIP
	}
	s.pongTimeout = cfg.PongTimeout
	if s.pongTimeout <= 0 {
		s.pongTimeout = defaultPongTimeout
	}
	s.cluster = cluster{broker: cfg.Broker, log: log, rlog: s.rlog, stop: s.stop}
	if s.cluster.broker == nil {
		s.cluster.broker, s.cluster.alone = memoryBroker{}, true
	}
	s.webhooks = newWebhooks(&cfg, log, s.stop, &s.cluster, s.appByID)
	s.setApps(cfg.Apps)
	if err := s.cluster.broker.Start(s); err != nil {
		return nil, fmt.Errorf("cluster broker: %w", err)
	}
	go s.janitor()
	go s.webhooks.timer()
	return s, nil
}

func (s *Server) setApps(cfgs []AppConfig) {
	byKey, byID := map[string]*App{}, map[string]*App{}
	s.mu.RLock()
	old := s.byAppID
	s.mu.RUnlock()
	for _, c := range cfgs {
		a := old[c.ID]
		if a == nil {
			a = newApp(c)
		} else {
			nc := c.withDefaults()
			a.cfg.Store(&nc)
		}
		byKey[c.Key], byID[c.ID] = a, a
	}
	s.mu.Lock()
	s.byKey, s.byAppID = byKey, byID
	s.mu.Unlock()
	s.webhooks.reload()
	// Apps that were removed: their sockets are told the app is gone (4001, do not reconnect).
	for id, a := range old {
		if byID[id] == nil {
			a.sockets.Range(func(k, _ any) bool {
				k.(*Socket).closeWith(ErrAppNotFound)
				return true
			})
		}
	}
}

func (s *Server) appByKey(key string) *App {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byKey[key]
}

func (s *Server) appByID(id string) *App {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byAppID[id]
}

func (s *Server) appList() []*App {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*App, 0, len(s.byAppID))
	for _, a := range s.byAppID {
		out = append(out, a)
	}
	return out
}

// Reload applies new apps, limits and origins (SIGHUP). Open sockets stay; sockets of removed
// apps are closed with 4001. The path prefix and server-wide limits apply as given.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if s.webhooks.local == nil {
		if err := cfg.checkWebhookPaths(); err != nil {
			return err
		}
	}
	if cfg.PathPrefix != s.prefix {
		return fmt.Errorf("path_prefix: changing it (%q → %q) needs a restart", s.prefix, cfg.PathPrefix)
	}
	s.setApps(cfg.Apps)
	return nil
}

// HandleWebSocket serves {prefix}/app/{key} (§1): handshake checks in the spec's order, then the
// upgrade. A refused connection is upgraded anyway, gets one pusher:error frame and is closed
// with the same code: the code is what pusher-js acts on (§1.2).
func (s *Server) HandleWebSocket(ctx *fasthttp.RequestCtx) {
	key := string(bytes.TrimPrefix(ctx.Path(), []byte(s.prefix+"/app/")))
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		jsonError(ctx, fasthttp.StatusUpgradeRequired, "this is the Pusher WebSocket endpoint; connect with a WebSocket client (pusher-js, Laravel Echo)")
		// A 426 names the protocol to switch to (RFC 9110 §15.5.22), and the version (RFC 6455 §4.4).
		ctx.Response.Header.Set("Upgrade", "websocket")
		ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		s.refuseHTTP(ctx, "not_websocket")
		return
	}
	app := s.appByKey(key)
	client := s.clientAddr(ctx)
	ip := s.ipKey(client)
	var refuse *Error
	var reason string
	switch proto := ctx.QueryArgs().Peek("protocol"); {
	case app == nil:
		refuse, reason = ErrAppNotFound, "unknown_app_key"
	case len(proto) == 0:
		refuse, reason = ErrNoProtocol, "no_protocol"
	case !supportedProtocol(proto):
		refuse, reason = ErrUnsupportedProto, "unsupported_protocol"
	case app.config().Disabled:
		refuse, reason = ErrAppDisabled, "app_disabled"
	case app.config().RequireTLS && !ctx.IsTLS():
		refuse, reason = ErrTLSRequired, "tls_required"
	case !app.originAllowed(string(ctx.Request.Header.Peek("Origin"))):
		refuse, reason = ErrOriginNotAllowed, "origin_not_allowed"
	case s.closing.Load():
		refuse, reason = ErrRestarting, "shutting_down"
	}
	if refuse == nil {
		refuse, reason = s.reserve(app, ip)
	}
	if refuse != nil {
		s.stats.refused(reason)
		s.rlog.event(zerolog.InfoLevel, reason).Str("reason", reason).Str("key", truncate(key, 64)).Str("remote", client.String()).
			Str("origin", truncate(string(ctx.Request.Header.Peek("Origin")), 100)).Int("code", refuse.Code).Msg("connection refused")
	}
	cfg := app.configOrDefault()
	// The 101 response is written by ws with the first frame, in one write: fasthttp would flush
	// it alone, a syscall (and a client wake-up) more for every connection.
	ctx.HijackSetNoResponse(true)
	err := s.upgrader.Upgrade(ctx, func(wc *websocket.Conn) {
		opts := ws.Options{MaxMessageSize: cfg.MaxMessageSize, MaxQueueBytes: s.queueBytes, MaxQueueFrames: s.queueFrames,
			OverflowFrames: [][]byte{overflowFrame}, Preface: ctx.Response.Header.AppendBytes(nil),
			// A request body stream would still read fasthttp's reader; without one (every real
			// client) the 16 KiB reader goes back to fasthttp's pool instead of becoming garbage.
			ReaderFree: !ctx.Request.IsBodyStream()}
		if refuse != nil {
			opts.First = [][]byte{ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, refuse.Code, refuse.Message))}
			ws.Adopt(wc.NetConn(), discard{}, opts, s.flusher).Close(refuse.Code, refuse.Message)
			return
		}
		sock := newSocket(s, app, s.newSocketID(), ip)
		opts.First = [][]byte{eventFrame("pusher:connection_established", "",
			`{"socket_id":"`+sock.id+`","activity_timeout":`+strconv.Itoa(cfg.ActivityTimeout)+`}`, "")}
		if e := s.log.Debug(); e.Enabled() { // before Adopt, so it precedes the socket's "closed"
			e.Str("app", cfg.ID).Str("socket_id", sock.id).Str("remote", wc.NetConn().RemoteAddr().String()).Msg("socket connected")
		}
		if s.trace {
			sock.traceOut(opts.First[0])
		}
		ws.Adopt(wc.NetConn(), sock, opts, s.flusher) // sock.Adopted registers it
	})
	if err != nil && refuse == nil {
		s.release(app, ip)
		s.refuseHTTP(ctx, "bad_handshake") // answered by refuseHandshake
	}
}

// refuseHTTP counts and logs (rate-limited) a request to /app/{key} answered with an HTTP error
// instead of a WebSocket: nothing of the request but its remote address and status is logged.
func (s *Server) refuseHTTP(ctx *fasthttp.RequestCtx, reason string) {
	s.stats.refused(reason)
	s.rlog.event(zerolog.InfoLevel, reason).Str("reason", reason).Str("remote", s.clientAddr(ctx).String()).
		Int("status", ctx.Response.StatusCode()).Msg("connection refused")
}

// refuseHandshake answers a request to /app/{key} that is not a usable WebSocket opening
// handshake (a method other than GET: 405; a missing key or Upgrade header: 400) with the
// library's status and reason as the JSON error every HTTP refusal here carries, and with
// Sec-WebSocket-Version: 13, which RFC 6455 §4.4 asks for whenever the version is refused (the
// library's own answer sets it and then loses it: ctx.Error resets the headers).
func refuseHandshake(ctx *fasthttp.RequestCtx, status int, reason error) {
	ctx.Response.Reset()
	jsonError(ctx, status, reason.Error())
	ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
}

// discard is the handler of a refused connection: it reads nothing of interest.
type discard struct{}

func (discard) OnMessage([]byte)    {}
func (discard) OnClose(int, string) {}

var overflowFrame = ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, 4100, "Over capacity: this connection is not reading fast enough; reconnect later"))

func (a *App) configOrDefault() AppConfig {
	if a == nil {
		return AppConfig{}.withDefaults()
	}
	return *a.config()
}

// supportedProtocol accepts protocol versions 5 to 7 (§1.2).
func supportedProtocol(p []byte) bool {
	v, err := strconv.Atoi(string(p))
	return err == nil && v >= 5 && v <= 7
}

// reserve counts the connection against the app's, the server's and the client address's caps
// (§1.2: 4004, 4100). With a broker, the app's cap counts the other nodes' sockets as last
// reported: a few seconds old, so a burst spread over nodes can pass the cap briefly
// (docs/configuration.md). The address cap is per node.
func (s *Server) reserve(app *App, ip string) (*Error, string) {
	if ip != "" {
		s.ipMu.Lock()
		if int(s.perIP[ip]) >= s.maxPerIP {
			s.ipMu.Unlock()
			return ErrTooManyFromIP, "ip_over_capacity"
		}
		s.perIP[ip]++
		s.ipMu.Unlock()
	}
	if e, reason := s.reserveApp(app); e != nil {
		s.releaseIP(ip)
		return e, reason
	}
	return nil, ""
}

func (s *Server) reserveApp(app *App) (*Error, string) {
	remote := s.cluster.broker.RemoteConnections(app.config().ID)
	if max := app.config().MaxConnections; app.conns.Add(1)+remote > int64(max) && max > 0 {
		app.conns.Add(-1)
		return ErrOverQuota, "app_over_quota"
	}
	if s.conns.Add(1) > int64(s.maxConn) && s.maxConn > 0 {
		s.conns.Add(-1)
		app.conns.Add(-1)
		return ErrOverCapacity, "server_over_capacity"
	}
	return nil, ""
}

func (s *Server) release(app *App, ip string) {
	app.conns.Add(-1)
	s.conns.Add(-1)
	s.releaseIP(ip)
}

func (s *Server) releaseIP(ip string) {
	if ip == "" {
		return
	}
	s.ipMu.Lock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.ipMu.Unlock()
}

// ipKey is the per-address cap's key: the IPv4 address, or an IPv6 address's /64, which is what
// one subscriber is usually handed (one address each would be no cap at all). "" means the
// address is not capped: no cap configured, or a local client (loopback, a Unix socket).
func (s *Server) ipKey(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case s.maxPerIP <= 0, !ip.IsValid():
		return ""
	case ip.IsLoopback() && !s.capLoopback:
		return ""
	case ip.Is4():
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// clientAddr is the visitor's address: as the proxy resolved it behind trusted proxies, else
// the TCP peer's.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if s.clientIP != nil {
		return s.clientIP(ctx)
	}
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// kicked counts and logs (rate-limited) a socket the server closed on its own account.
func (s *Server) kicked(sock *Socket, reason string, code int) {
	s.stats.kicked(reason)
	s.rlog.event(zerolog.InfoLevel, "kick "+reason).Str("reason", reason).Str("app", sock.app.config().ID).
		Str("socket_id", sock.id).Int("code", code).Msg("socket closed by the server")
}

// newSocketID is "node.counter" (§1.3): digits only, unique per process and, through the random
// node part, across nodes.
func (s *Server) newSocketID() string {
	b := make([]byte, 0, 24)
	b = strconv.AppendUint(b, s.nodeID, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, s.counter.Add(1), 10)
	return string(b)
}

// janitor is the one goroutine that does per-socket timekeeping (§3): ping after ping_interval
// of silence, close with 4201 when no frame follows within 30 s, and the authorization timeout.
func (s *Server) janitor() {
	every := s.sweepInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	lastExpire := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for _, a := range s.appList() {
				cfg := a.config()
				a.sockets.Range(func(k, _ any) bool {
					k.(*Socket).checkLiveness(now, cfg, s.pongTimeout)
					return true
				})
				if now.Sub(lastExpire) > time.Minute {
					a.hub.expireCache(now)
				}
			}
			if now.Sub(lastExpire) > time.Minute {
				s.webhooks.expireCacheMisses(now)
			}
			if now.Sub(lastExpire) > time.Minute {
				lastExpire = now
			}
			if d := s.sweepInterval(); d != every { // a reload changed the apps' timeouts
				every = d
				t.Reset(every)
			}
		}
	}
}

// sweepInterval is how often the janitor walks every socket: a tenth of the shortest timeout it
// enforces (ping interval, pong timeout, authorization timeout), between 100 ms and 5 s, so a
// ping or a close is at most a tenth late. Each walk touches every socket (about 6 ms for 20,000
// here): with the defaults (60 s ping, 30 s pong) it runs every 3 s instead of every second.
func (s *Server) sweepInterval() time.Duration {
	shortest := s.pongTimeout
	for _, a := range s.appList() {
		cfg := a.config()
		for _, sec := range []int{cfg.PingInterval, cfg.AuthorizationTimeout} {
			if d := time.Duration(sec) * time.Second; d > 0 && d < shortest {
				shortest = d
			}
		}
	}
	return min(max(shortest/10, 100*time.Millisecond), 5*time.Second)
}

func (sock *Socket) checkLiveness(now time.Time, cfg *AppConfig, pongTimeout time.Duration) {
	last := time.Unix(0, sock.conn.LastActivity())
	if pinged := sock.pingedAt.Load(); pinged != 0 {
		if last.UnixNano() > pinged {
			sock.pingedAt.Store(0)
		} else if now.Sub(time.Unix(0, pinged)) > pongTimeout {
			sock.kick("pong_timeout", ErrPongTimeout)
			return
		}
	} else if now.Sub(last) > time.Duration(cfg.PingInterval)*time.Second {
		sock.pingedAt.Store(now.UnixNano())
		if sock.srv.trace {
			sock.srv.log.Trace().Str("app", cfg.ID).Str("socket_id", sock.id).Msg("ping out (WebSocket control frame)")
		}
		sock.conn.Ping()
	}
	if cfg.AuthorizationTimeout > 0 && now.Sub(sock.connectedAt) > time.Duration(cfg.AuthorizationTimeout)*time.Second {
		sock.mu.Lock()
		ok := sock.authorized || sock.closed
		sock.mu.Unlock()
		if !ok {
			sock.kick("not_authorized_in_time", ErrNotAuthorizedTime)
		}
	}
}

// Shutdown tells every socket to reconnect (pusher:error 4200 and close 4200) and waits for them
// to close or for ctx to end. fasthttp does not track hijacked connections, so this is the only
// thing that closes them (docs/architecture.md). Closes are spread over a second or, with
// Config.AuthRate, over the time PHP needs to authorize everyone again (pacing.go), so clients
// do not all reconnect in the same instant (nats lame-duck mode).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	var all []*Socket
	for _, a := range s.appList() {
		a.sockets.Range(func(k, _ any) bool {
			all = append(all, k.(*Socket))
			return true
		})
	}
	s.closeAllPaced(ctx, all)
	defer s.stopOnce.Do(func() {
		// The webhooks the sockets' departure made, and those still queued, go out while ctx
		// allows (a deploy must not lose channel_vacated / member_removed).
		s.webhooks.flush(ctx)
		close(s.stop)
		// After the sockets had their chance to close: ends the writers, pollers and serving
		// goroutines, closing what is still open.
		s.flusher.Stop()
		s.webhooks.undeliveredAtStop()
		// After the sockets left (their presence entries with them): leave the cluster.
		if err := s.cluster.broker.Close(); err != nil {
			s.log.Warn().Err(err).Msg("cluster: leaving")
		}
	})
	for s.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d sockets still open: %w", s.conns.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
