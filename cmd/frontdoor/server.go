package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
	"github.com/frontdoorhq/frontdoor/proxy"
	"github.com/frontdoorhq/frontdoor/pusher"
	redisbroker "github.com/frontdoorhq/frontdoor/pusher/redis"
	fdtls "github.com/frontdoorhq/frontdoor/tls"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	s, err := loadSettings(args, envLookup, stderr)
	if isHelp(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "frontdoor: %v\n", err)
		return 2
	}
	// The level is the process's global one, so a reload can change it (server.reload).
	log := newLogger(stderr, s.LogFormat, "trace")
	if lvl, err := parseLevel(s.logLevel()); err == nil {
		zerolog.SetGlobalLevel(lvl)
	}
	for _, n := range s.notices {
		log.Warn().Msg(n)
	}
	if s.devCredentials {
		printDevCredentials(stderr, s)
	}
	raiseFileLimit(log)
	setHeapFloor(log)

	srv, err := newServer(s, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, upgraded := context.WithCancel(ctx)
	defer upgraded()
	sigs := make(chan os.Signal, 1)
	if len(controlSignals) > 0 { // Notify with no signals would relay every signal
		signal.Notify(sigs, controlSignals...)
	}
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			if isReload(sig) {
				srv.reload(args)
				continue
			}
			if !fdtls.ReusePort {
				log.Error().Str("os", runtime.GOOS).Msg(errNoUpgrade.Error())
				continue
			}
			newPid, err := startUpgrade(args, log)
			if err != nil {
				log.Error().Err(err).Msg("upgrade failed: this process keeps serving")
				writeUpgradeStatus(s.PidFile, "failed "+err.Error(), log)
				continue
			}
			writeUpgradeStatus(s.PidFile, "ready "+strconv.Itoa(newPid), log)
			log.Info().Msg("upgrade: the new process listens; draining this one")
			srv.upgrading.Store(true)
			upgraded()
			return
		}
	}()
	if err := srv.run(ctx); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	return 0
}

// server is one running frontdoor: its listeners and the three jobs behind them.
type server struct {
	log      zerolog.Logger
	settings settings
	pusher   *pusher.Server
	// sites routes by host to each site's proxy and certificates (sitetable.go); replaced whole
	// on reload.
	sites    atomic.Pointer[siteTable]
	broker   *redisbroker.Broker // nil on a single node; the pusher server closes it
	h2       *h2Server           // nil when TLS or HTTP/2 is off
	h2Ln     net.Listener        // the TLS connections that chose h2
	askLimit *askLimiter         // on-demand TLS asks across all sites
	metrics  *metrics
	workers  *workers.Supervisor // the app's queue workers and the like; started once listeners serve

	listeners []boundListener
	admin     *fasthttp.Server
	adminLn   net.Listener
	ready     atomic.Bool
	upgrading atomic.Bool // a new process took over: leave the pid file to it

	malformedLogs *ratelog.Limiter
	hostLogs      *ratelog.Limiter // requests for names no site serves

	mgrMu   sync.Mutex
	runCtx  context.Context                       // set by run: managers started after it run under it
	mgrRuns map[*fdtls.Manager]context.CancelFunc // running certificate watch loops
}

// boundListener is a listener with the fasthttp server that serves it and the name logs use.
type boundListener struct {
	name string
	ln   net.Listener
	srv  *fasthttp.Server
}

func newServer(s settings, log zerolog.Logger) (_ *server, err error) {
	srv := &server{log: log, settings: s, metrics: newMetrics(), malformedLogs: ratelog.New(1, 10*time.Second),
		workers: workers.New(workers.DefaultOptions(), log.With().Str("component", "workers").Logger())}
	defer func() {
		if err != nil {
			srv.closeListeners()
		}
	}()

	srv.hostLogs = ratelog.New(1, 10*time.Second)
	var limit float64
	setIf(&limit, s.onDemandLimits.AsksPerMinute)
	srv.askLimit = newAskLimiter(limit)
	srv.metrics.register(srv)
	t, err := srv.buildSites(s, nil)
	if err != nil {
		return nil, err
	}
	srv.sites.Store(t)
	defer func() {
		if err != nil {
			srv.closeSites()
		}
	}()

	pusherCfg := s.Pusher
	// Webhooks to a path reach PHP through the front door in-process, as if from loopback: the
	// default site's.
	pusherCfg.WebhookLocal = func(ctx *fasthttp.RequestCtx) { srv.sites.Load().def.handler.ServeHTTP(ctx) }
	// The site handler resolves the visitor behind trusted proxies before the Pusher side runs,
	// so the per-address cap and the logs count visitors, not the balancer.
	pusherCfg.ClientIP = proxy.ClientIP
	// Shutdown paces its reconnects to the authorizations per second PHP answers (pusher/pacing.go),
	// when the clients have somewhere to reconnect to meanwhile: the new process of an upgrade, or
	// the other nodes. A lone node that stops has no listener left: spreading the closes would
	// only delay its exit, and the clients come back together when it starts again.
	pusherCfg.AuthRate = func() float64 {
		if !srv.upgrading.Load() && srv.broker == nil {
			return 0
		}
		return srv.sites.Load().def.handler.AuthCapacity()
	}
	if d := t.def.cfg.TLS.Domains; len(d) > 0 {
		pusherCfg.WebhookHost = d[0]
	}
	if s.Redis.URL != "" {
		if srv.broker, err = redisbroker.New(s.Redis, log.With().Str("component", "cluster").Logger()); err != nil {
			return nil, err
		}
		pusherCfg.Broker = srv.broker
	}
	if srv.pusher, err = pusher.NewServer(pusherCfg, log.With().Str("component", "pusher").Logger()); err != nil {
		return nil, err
	}

	if len(t.managers) > 0 {
		ln, err := fdtls.Listen(s.TLS.HTTPSAddr)
		if err != nil {
			return nil, err
		}
		ln = fdtls.GuardAccept(ln, fdtls.AcceptGuard{Name: "https", Log: log})
		ln = srv.proxyProtocol("https", ln) // before TLS: the header precedes the handshake
		https := srv.siteHandler(false)
		tlsLn := t.refuser.NewListenerFunc(pusher.ListenerForTLS(ln), srv.getCertificate)
		if s.TLS.HTTP2 {
			// Connections that choose h2 go to the HTTP/2 server, which runs the same handler.
			srv.h2 = newH2Server(https, srv.metrics, log.With().Str("component", "http2").Logger())
			tlsLn, srv.h2Ln = fdtls.SplitH2(tlsLn, h2HandshakeTimeout)
		}
		srv.listeners = append(srv.listeners, boundListener{"https", tlsLn, srv.httpServer(https)})
		ln80, err := fdtls.Listen(s.TLS.HTTPAddr)
		if err != nil {
			return nil, err
		}
		ln80 = fdtls.GuardAccept(ln80, fdtls.AcceptGuard{Name: "http", RefuseHTTP: true, Log: log})
		ln80 = srv.proxyProtocol("http", ln80)
		// Checked before the redirect too: only served names are sent on to https.
		srv.listeners = append(srv.listeners, boundListener{"http", ln80, srv.httpServer(srv.http80Handler())})
	}
	if s.Listen != "" {
		ln, err := fdtls.Listen(s.Listen)
		if err != nil {
			return nil, err
		}
		ln = fdtls.GuardAccept(ln, fdtls.AcceptGuard{Name: "plain", RefuseHTTP: true, Log: log})
		ln = srv.proxyProtocol("plain", ln)
		// The broadcaster posts to 127.0.0.1 beside TLS: its Host is no site's name.
		srv.listeners = append(srv.listeners, boundListener{"plain", ln, srv.httpServer(srv.siteHandler(isLoopback(s.Listen)))})
	}
	if s.Admin != "" && s.Admin != "off" {
		// SO_REUSEPORT here too, so an upgrade's new process can bind it while this one drains.
		if srv.adminLn, err = fdtls.Listen(s.Admin); err != nil {
			return nil, fmt.Errorf("admin: %w (set --admin to a free address or --admin off)", err)
		}
		srv.adminLn = fdtls.GuardAccept(srv.adminLn, fdtls.AcceptGuard{Name: "admin", RefuseHTTP: true, Log: log})
		srv.admin = srv.adminServer()
	}
	return srv, nil
}

// isLoopback reports a listen address on the loopback interface (127.0.0.1:8080, [::1]:8080,
// localhost:8080).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// firstSegment is p up to its first slash.
func firstSegment(p []byte) []byte {
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// httpServer holds the settings every listener shares. KeepHijackedConns is the idle-socket
// budget in docs/architecture.md; StreamRequestBody hands large uploads to the proxy as a stream,
// which it spools to a temporary file instead of holding in memory. ReadBufferSize is also the largest request header (Nginx accepts 8 KiB a line and 32 KiB
// in all; Laravel apps with several cookies pass 4 KiB): beyond it the client gets 431. An
// upgraded WebSocket does not keep this buffer (ws drains it at adoption).
func (srv *server) httpServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		NoDefaultServerHeader: true,
		KeepHijackedConns:     true,
		ReadBufferSize:        maxHeaderBytes,
		StreamRequestBody:     true,
		MaxRequestBodySize:    4 << 20, // read into memory up to this; beyond, the body streams
		// Uploads go to PHP as they came; fasthttp would otherwise parse every multipart body
		// into memory before the handler runs, past --max-body.
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  60 * time.Second,
		IdleTimeout:                  75 * time.Second,
		// fasthttp's parse errors quote the request bytes (cookies, Authorization) unless told not to.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{srv.log.With().Str("component", "http").Logger()},
		ErrorHandler:          srv.refuseMalformed,
	}
}

// maxHeaderBytes bounds a request's line and headers together.
const maxHeaderBytes = 16 << 10

// refuseMalformed answers a request fasthttp could not parse. The error's text is never logged:
// even with SecureErrorLogMessage, fasthttp quotes header values (a cookie, a bearer token) in
// some of its errors. What is logged is the class, once per interval, with the count between.
func (srv *server) refuseMalformed(ctx *fasthttp.RequestCtx, err error) {
	status, reason := fasthttp.StatusBadRequest, "malformed"
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case badProxyHeader(err):
		reason = "proxy_protocol" // missing or malformed on a --proxy-protocol listener
	case errors.As(err, &small):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large"
	case errors.As(err, &ne) && ne.Timeout():
		// A client that opened a connection and sent nothing (or not all of it) in ReadTimeout:
		// routine on a public port, counted but not logged.
		status, reason = fasthttp.StatusRequestTimeout, "timeout"
	}
	srv.metrics.refusedRequest(reason)
	if reason != "timeout" {
		if quiet, ok := srv.malformedLogs.Allow(); ok {
			srv.log.Info().Str("reason", reason).Int("status", status).Str("remote", ctx.RemoteAddr().String()).
				Uint64("suppressed", quiet).Msg("refused a malformed request")
		}
	}
	ctx.Response.Header.Set("Connection", "close")
	ctx.Error(fasthttp.StatusMessage(status)+"\n", status)
}

// run serves until ctx ends, then shuts down gracefully: listeners close, WebSocket clients are
// told to reconnect elsewhere (4200), and in-flight requests get ShutdownTimeout to finish.
func (srv *server) run(ctx context.Context) error {
	errc := make(chan error, len(srv.listeners)+2)
	for _, bl := range srv.listeners {
		srv.log.Info().Str("listener", bl.name).Str("addr", bl.ln.Addr().String()).Msg("listening")
		go func() { errc <- bl.srv.Serve(bl.ln) }()
	}
	if srv.h2 != nil {
		go func() { errc <- srv.h2.Serve(srv.h2Ln) }()
	}
	if srv.admin != nil {
		srv.log.Info().Str("listener", "admin").Str("addr", srv.adminLn.Addr().String()).Msg("admin listening")
		go func() { errc <- srv.admin.Serve(srv.adminLn) }()
	}
	srv.mgrMu.Lock()
	srv.runCtx = ctx
	srv.mgrMu.Unlock()
	srv.runManagers(srv.sites.Load())
	if err := srv.writePidFile(); err != nil {
		srv.log.Warn().Err(err).Str("file", srv.settings.PidFile).Msg("cannot write the pid file")
	}
	srv.ready.Store(true)
	announceReady(srv.log)
	// After the announcement: in an upgrade the old process now stops its workers (each finishes
	// its job) while these start, so the two sets overlap by at most one job.
	srv.workers.Start(srv.settings.Workers)

	var runErr error
	select {
	case <-ctx.Done():
		srv.log.Info().Msg("shutting down: closing listeners, asking WebSocket clients to reconnect")
	case runErr = <-errc:
		srv.log.Error().Err(runErr).Msg("a listener failed; shutting down")
	}
	srv.ready.Store(false)
	srv.shutdown()
	return runErr
}

func (srv *server) shutdown() {
	srv.stopWorkers()
	ctx, cancel := context.WithTimeout(context.Background(), srv.settings.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, bl := range srv.listeners {
		wg.Go(func() {
			if err := bl.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				srv.log.Warn().Err(err).Str("listener", bl.name).Msg("shutdown")
			}
		})
	}
	if srv.h2 != nil {
		wg.Go(func() {
			if err := srv.h2.Shutdown(ctx); err != nil {
				srv.log.Warn().Err(err).Msg("http2 shutdown: connections still open were closed")
			}
		})
	}
	// fasthttp neither waits for nor closes hijacked connections: the hub closes its sockets.
	wg.Go(func() {
		if err := srv.pusher.Shutdown(ctx); err != nil {
			srv.log.Warn().Err(err).Msg("pusher shutdown")
		}
	})
	wg.Wait()
	srv.closeSites()
	if srv.admin != nil {
		_ = srv.admin.Shutdown()
	}
	srv.removePidFile()
	srv.log.Info().Msg("stopped")
}

func (srv *server) writePidFile() error {
	if srv.settings.PidFile == "" {
		return nil
	}
	return os.WriteFile(srv.settings.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// removePidFile deletes the pid file unless a newer process has written its own pid there.
func (srv *server) removePidFile() {
	if srv.settings.PidFile == "" || srv.upgrading.Load() {
		return
	}
	raw, err := os.ReadFile(srv.settings.PidFile)
	if err == nil && strings.TrimSpace(string(raw)) == strconv.Itoa(os.Getpid()) {
		os.Remove(srv.settings.PidFile)
	}
}

// reload re-reads every layer on SIGHUP and applies what can change without dropping a
// connection: apps, origins and limits, sites (added, changed, removed: a changed site gets a new
// proxy handler while requests in flight finish on the old one), upstreams, roots, body limits,
// host names and certificates, and the log level. What needs new listeners (addresses, TLS on or
// off, Redis) is refused by name, never silently ignored. An invalid configuration changes nothing.
func (srv *server) reload(args []string) {
	s, err := loadSettings(args, envLookup, io.Discard)
	if err != nil {
		srv.log.Error().Err(err).Msg("reload refused: the new configuration is invalid; keeping the running one")
		return
	}
	if s.devCredentials {
		s.Pusher.Apps = srv.settings.Pusher.Apps // keep this run's generated credentials
	}
	t, refused, err := srv.reloadSites(s)
	if err != nil {
		srv.log.Error().Err(err).Msg("reload refused; keeping the running configuration")
		return
	}
	if err := srv.pusher.Reload(s.Pusher); err != nil {
		srv.discardSites(t)
		srv.log.Error().Err(err).Msg("reload of apps refused; keeping the running configuration")
		return
	}
	old := srv.sites.Swap(t)
	srv.retire(old, t)
	for _, m := range t.managers {
		if err := m.Reload(); err != nil {
			srv.log.Error().Err(err).Msg("certificate reload failed; keeping the loaded certificates")
		}
	}
	if len(refused) > 0 {
		srv.log.Error().Strs("settings", refused).Msg("reload: these settings changed but need a restart (frontdoor restart); they keep their running values")
	}
	if lvl, err := parseLevel(s.LogLevel); err == nil && lvl != zerolog.GlobalLevel() {
		zerolog.SetGlobalLevel(lvl)
		srv.log.Info().Str("level", lvl.String()).Msg("log level changed")
	}
	// srv.settings stays the start-up configuration (listeners, pid file, shutdown timeout): what a
	// reload changes lives in the site table, the Pusher server and the workers.
	// A reload after a deploy is also `php artisan queue:restart`: workers pick up the new code.
	srv.workers.Reload(s.Workers)
	srv.log.Info().Int("apps", len(s.Pusher.Apps)).Int("sites", len(t.sites)).Msg("configuration reloaded")
}

// discardSites closes the handlers a table built for a refused reload opened.
func (srv *server) discardSites(t *siteTable) {
	cur := srv.sites.Load()
	keep := map[*proxy.Handler]bool{}
	for _, s := range cur.sites {
		keep[s.handler] = true
	}
	for _, s := range t.sites {
		if !keep[s.handler] {
			s.handler.Close()
		}
	}
}

// closeSites closes every proxy handler of the current table (shutdown).
func (srv *server) closeSites() {
	t := srv.sites.Load()
	if t == nil {
		return
	}
	for _, s := range t.sites {
		if err := s.handler.Close(); err != nil {
			srv.log.Warn().Err(err).Str("site", s.cfg.Name).Msg("proxy close")
		}
	}
}

// stopWorkers lets each worker finish its current job (SIGTERM; SIGKILL after its stop_timeout)
// before the listeners close: a job that broadcasts when it ends still reaches the Pusher API on
// this process. /readyz already says not ready, so a load balancer drains the node meanwhile.
// Stop is bounded by the longest stop_timeout.
func (srv *server) stopWorkers() {
	if len(srv.workers.Status()) == 0 {
		return
	}
	srv.log.Info().Msg("stopping workers: each finishes its current job")
	srv.workers.Stop(context.Background())
}

func (srv *server) closeListeners() {
	for _, bl := range srv.listeners {
		bl.ln.Close()
	}
	if srv.adminLn != nil {
		srv.adminLn.Close()
	}
}

// fasthttpLogger sends fasthttp's own messages (accept errors and the like) to zerolog.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Warn().Msgf(format, args...) }

func printDevCredentials(w io.Writer, s settings) {
	a := s.Pusher.Apps[0]
	host, port, _ := net.SplitHostPort(s.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	fmt.Fprintf(w, `
No app configured (REVERB_APP_ID/KEY/SECRET, --env-file or --app-*): using development credentials
generated for this run. Put these lines in your Laravel .env to connect Echo and the broadcaster:

BROADCAST_CONNECTION=reverb
REVERB_APP_ID=%s
REVERB_APP_KEY=%s
REVERB_APP_SECRET=%s
REVERB_HOST=%s
REVERB_PORT=%s
REVERB_SCHEME=http

VITE_REVERB_APP_KEY="${REVERB_APP_KEY}"
VITE_REVERB_HOST="${REVERB_HOST}"
VITE_REVERB_PORT="${REVERB_PORT}"
VITE_REVERB_SCHEME="${REVERB_SCHEME}"

`, a.ID, a.Key, a.Secret, host, port)
}
