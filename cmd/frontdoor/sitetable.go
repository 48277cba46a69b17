package main

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/proxy"
	fdtls "github.com/frontdoorhq/frontdoor/tls"
)

// liveSite is one site as it serves: its proxy handler, the app keys its sockets may use and its
// certificates. A reload builds a new siteTable and swaps it in; what did not change (a handler,
// a certificate manager, an on-demand cache) is carried over, so the site's connections and
// caches stay.
type liveSite struct {
	cfg     siteSettings
	handler *proxy.Handler
	// keys are the app keys this site's WebSocket clients may use; nil allows every app.
	keys     map[string]bool
	certs    *fdtls.Manager // nil while this site has TLS off
	hsts     []byte         // Strict-Transport-Security value over TLS; nil sends none
	asker    *onDemandAsker // nil without on_demand
	inflight atomic.Int64   // requests inside handler, so a replaced handler closes after them
}

// siteTable routes by host name. It is immutable once built; srv.sites holds the current one.
type siteTable struct {
	implicit bool // no sites: in the YAML: one site described by the flags, routed as before sites existed
	sites    []*liveSite
	exact    map[string]*liveSite
	wild     map[string]*liveSite // "example.com" for "*.example.com": exactly one more label
	def      *liveSite            // bare IP, no SNI, loopback broadcaster
	catchAll *liveSite            // proxy.allow_any_host: names no site lists
	acme     *fdtls.Manager       // the one ACME manager every auto site shares; nil when none
	acmeCfg  fdtls.Config         // what acme was built from (OnDemand compared by presence)
	managers []*fdtls.Manager     // distinct managers, for Run, Reload, metrics
	refuser  *fdtls.Manager       // reports handshakes for names no site serves
	// http80 serves :80 behind the host check: ACME http-01 for the ACME manager, then the redirect.
	http80 fasthttp.RequestHandler
}

// lookup is the site that lists name (exact, then wildcard), or nil.
func (t *siteTable) lookup(name string) *liveSite {
	if s := t.exact[name]; s != nil {
		return s
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return t.wild[name[i+1:]]
	}
	return nil
}

// siteHost is a Host header (or SNI) as a site name: no port, no IPv6 brackets, lower case, no
// trailing dot.
func siteHost(host []byte) string {
	h := string(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// forName is the site for a request or handshake naming name; ask lets an on-demand site's app
// claim a name it has not answered for yet. nil: no site serves the name.
func (t *siteTable) forName(ctx context.Context, name string, ask bool) *liveSite {
	if t.implicit {
		return t.sites[0]
	}
	if s := t.lookup(name); s != nil {
		return s
	}
	if name == "" || name == "localhost" || net.ParseIP(name) != nil {
		return t.def
	}
	for _, s := range t.sites {
		if s.asker == nil {
			continue
		}
		if ok, known := s.asker.cached(name); known && ok {
			return s
		}
	}
	if ask {
		for _, s := range t.sites {
			if s.asker != nil && s.asker.allowed(ctx, name) {
				return s
			}
		}
	}
	return t.catchAll
}

// buildSites makes the table for s, carrying over from old (nil at start-up) what did not change.
// On error nothing new stays open.
func (srv *server) buildSites(s settings, old *siteTable) (_ *siteTable, err error) {
	t := &siteTable{implicit: len(s.Sites) == 0, exact: map[string]*liveSite{}, wild: map[string]*liveSite{}}
	var fresh []*proxy.Handler
	defer func() {
		if err != nil {
			for _, h := range fresh {
				h.Close()
			}
		}
	}()
	cfgs := s.Sites
	if t.implicit {
		one := siteSettings{Name: "default", Default: true, Hosts: s.TLS.Domains, Proxy: s.Proxy, TLS: s.TLS}
		one.Proxy.Hosts = s.TLS.Domains // 421 for other names on the public listeners
		cfgs = []siteSettings{one}
	}
	topKeys := map[string]bool{}
	for _, a := range s.Pusher.Apps {
		topKeys[a.Key] = true
	}
	for _, sc := range s.Sites {
		for _, a := range sc.Apps {
			delete(topKeys, a.Key)
		}
	}
	oldSite := func(name string) *liveSite {
		if old == nil {
			return nil
		}
		for _, o := range old.sites {
			if o.cfg.Name == name {
				return o
			}
		}
		return nil
	}

	// Every ACME site shares one autocert manager: one account, one cache, and a host policy that
	// allows exactly the union of their names (plus what on-demand sites' apps allow).
	acmeCfg := s.TLS
	acmeCfg.Mode, acmeCfg.Domains, acmeCfg.CertFile, acmeCfg.KeyFile = fdtls.ModeAuto, nil, "", ""
	anyACME, anyOnDemand := false, false
	for _, sc := range cfgs {
		if sc.TLS.Mode == fdtls.ModeAuto {
			anyACME = true
			acmeCfg.Domains = append(acmeCfg.Domains, sc.TLS.Domains...)
			anyOnDemand = anyOnDemand || sc.OnDemand != nil
		}
	}
	if anyACME {
		if anyOnDemand {
			acmeCfg.OnDemand = &fdtls.OnDemand{Allowed: srv.onDemandAllowed}
			setIf(&acmeCfg.OnDemand.OrdersPerMinute, s.onDemandLimits.OrdersPerMinute)
			setIf(&acmeCfg.OnDemand.Burst, s.onDemandLimits.Burst)
		}
		if old != nil && old.acme != nil && sameTLS(old.acmeCfg, acmeCfg) {
			t.acme = old.acme
		} else if t.acme, err = fdtls.New(acmeCfg, srv.log.With().Str("component", "tls").Logger()); err != nil {
			return nil, err
		}
		t.acmeCfg = acmeCfg
		t.managers = append(t.managers, t.acme)
	}

	for _, sc := range cfgs {
		prev := oldSite(sc.Name)
		ls := &liveSite{cfg: sc}
		pc := sc.Proxy
		pc.AccessLog = s.AccessLog
		if !t.implicit {
			// The table checked the Host already; SERVER_NAME is then the matched name itself
			// unless the site lists exactly its names.
			pc.Hosts = nil
			if len(sc.TLS.Domains) == len(sc.Hosts) && sc.OnDemand == nil && !sc.Proxy.AllowAnyHost {
				pc.Hosts = sc.Hosts
			}
		}
		ls.cfg.Proxy = pc
		if prev != nil && reflect.DeepEqual(prev.cfg.Proxy, pc) {
			ls.handler = prev.handler
		} else {
			if ls.handler, err = proxy.New(pc, srv.log.With().Str("component", "proxy").Str("site", sc.Name).Logger()); err != nil {
				if !t.implicit {
					err = fmt.Errorf("site %s: %w", sc.Name, err)
				}
				return nil, err
			}
			ls.handler.SetObserver(srv.metrics)
			fresh = append(fresh, ls.handler)
		}
		if !t.implicit {
			ls.keys = topKeys
			if sc.OwnsApps {
				ls.keys = map[string]bool{}
				for _, a := range sc.Apps {
					ls.keys[a.Key] = true
				}
			}
		}
		switch sc.TLS.Mode {
		case "off":
		case "auto":
			ls.certs = t.acme
		default:
			if prev != nil && prev.certs != nil && prev.certs != (old.acme) && sameTLS(prev.cfg.TLS, sc.TLS) {
				ls.certs = prev.certs
			} else if ls.certs, err = fdtls.New(sc.TLS, srv.log.With().Str("component", "tls").Str("site", sc.Name).Logger()); err != nil {
				return nil, fmt.Errorf("site %s: %w", sc.Name, err)
			}
			t.managers = append(t.managers, ls.certs)
		}
		if ls.certs != nil && sc.TLS.HSTS > 0 {
			ls.hsts = []byte("max-age=" + strconv.Itoa(int(sc.TLS.HSTS.Seconds())))
		}
		if od := sc.OnDemand; od != nil {
			if prev != nil && prev.asker != nil && prev.asker.path == od.Ask && prev.asker.refusedTTL == od.RefusedTTL {
				ls.asker = prev.asker // its cache stays: names already allowed keep their site
			} else {
				ls.asker = srv.newAsker(od, sc)
			}
			ls.asker.handler.Store(ls.handler)
		}
		for _, h := range sc.Hosts {
			if w, ok := strings.CutPrefix(h, "*."); ok {
				t.wild[w] = ls
			} else {
				t.exact[h] = ls
			}
		}
		if sc.Default {
			t.def = ls
		}
		if !t.implicit && sc.Proxy.AllowAnyHost {
			t.catchAll = ls
		}
		t.sites = append(t.sites, ls)
	}
	if t.def == nil {
		t.def = t.sites[0]
	}
	if len(t.managers) > 0 {
		t.refuser = t.managers[0]
		fallback := srv.siteHandler(false)
		if t.acme != nil {
			t.http80 = t.acme.HTTPHandler(fallback)
		} else {
			t.http80 = t.managers[0].HTTPHandler(fallback)
		}
	}
	return t, nil
}

// sameTLS compares certificate settings; an on-demand hook compares by presence and limits.
func sameTLS(a, b fdtls.Config) bool {
	ao, bo := a.OnDemand, b.OnDemand
	a.OnDemand, b.OnDemand = nil, nil
	if (ao == nil) != (bo == nil) {
		return false
	}
	if ao != nil && (ao.OrdersPerMinute != bo.OrdersPerMinute || ao.Burst != bo.Burst) {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// siteHandler routes a request to its site, then by path to the Pusher side or the site's PHP.
// loopback marks a plain listener on loopback (the broadcaster beside TLS): without sites its
// requests are never refused for their Host (as before sites existed); with sites, an address or
// localhost goes to the default site and another name must be a site's.
func (srv *server) siteHandler(loopback bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		t := srv.sites.Load()
		site := t.forName(context.Background(), siteHost(ctx.Host()), !ctx.IsTLS())
		if site == nil {
			srv.refuseUnknownHost(ctx)
			return
		}
		// The visitor's address behind the site's trusted proxies, once for all three jobs
		// (proxy.ClientIPKey): PHP, the access log and the Pusher side's per-address cap.
		site.handler.ResolveClient(ctx)
		// The flags-only server keeps its own check: 421 for a Host other than its --domain names.
		if !(t.implicit && !loopback && len(site.cfg.Hosts) > 0 && !site.cfg.Proxy.AllowAnyHost && site.handler.RefuseHost(ctx)) {
			site.inflight.Add(1)
			srv.dispatch(ctx, site)
			site.inflight.Add(-1)
		}
		if site.hsts != nil && ctx.IsTLS() && len(ctx.Response.Header.Peek("Strict-Transport-Security")) == 0 {
			ctx.Response.Header.SetBytesV("Strict-Transport-Security", site.hsts)
		}
	}
}

// dispatch is the path split of docs/architecture.md "The path of a request" for one site: the
// Pusher side takes a path only when it is really its own (a configured key or app id, a
// WebSocket handshake, a signed API request), so a Laravel route under /app or /apps (Filament's
// default panel is /app) still reaches PHP. A site's sockets may use only its own apps' keys (or
// the shared top-level apps); the HTTP API takes any app on any host, since it is signed with the
// app's secret and the broadcaster often posts to a loopback address.
func (srv *server) dispatch(ctx *fasthttp.RequestCtx, site *liveSite) {
	prefix := srv.settings.Pusher.PathPrefix
	path := ctx.Path()
	appPrefix, apiPrefix := prefix+"/app/", prefix+"/apps/"
	switch {
	case bytes.HasPrefix(path, []byte(appPrefix)):
		key := path[len(appPrefix):]
		known := srv.pusher.KnownKey(key)
		if !known && !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
			break
		}
		if known && site.keys != nil && !site.keys[string(key)] {
			srv.metrics.refusedRequest("app_key_other_site")
			ctx.SetContentType("application/json")
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			ctx.SetBodyString(`{"error":"this app key is not served on this host name"}` + "\n")
			return
		}
		srv.pusher.HandleWebSocket(ctx)
		return
	case bytes.HasPrefix(path, []byte(apiPrefix)) &&
		(srv.pusher.KnownAppID(firstSegment(path[len(apiPrefix):])) || ctx.QueryArgs().Has("auth_signature")):
		srv.pusher.HandleAPI(ctx)
		return
	}
	site.handler.ServeHTTP(ctx)
}

// refuseUnknownHost answers a request for a name no site serves: 421 Misdirected Request over TLS
// (RFC 9110 §15.5.20: the connection reached a server that does not serve it), 404 on plain HTTP.
// No PHP and no Pusher endpoint sees it. Logged once per interval with the count between.
func (srv *server) refuseUnknownHost(ctx *fasthttp.RequestCtx) {
	status := fasthttp.StatusNotFound
	if ctx.IsTLS() {
		status = fasthttp.StatusMisdirectedRequest
	}
	srv.metrics.refusedRequest("unknown_host")
	if quiet, ok := srv.hostLogs.Allow(); ok {
		srv.log.Info().Int("status", status).Int("host_bytes", len(ctx.Host())).Str("remote", ctx.RemoteIP().String()).
			Uint64("suppressed", quiet).Msg("request for a host name no site serves refused")
	}
	ctx.SetConnectionClose()
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(status)
	ctx.SetBodyString(fasthttp.StatusMessage(status) + ": no site on this server answers to that host name\n")
}

// http80Handler is the :80 listener: names no site serves get 404 (never a redirect, never an
// ACME answer); the others go to the table's ACME challenge handler and redirect.
func (srv *server) http80Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		t := srv.sites.Load()
		site := t.forName(context.Background(), siteHost(ctx.Host()), true)
		if site == nil {
			srv.refuseUnknownHost(ctx)
			return
		}
		if t.implicit && len(site.cfg.Hosts) > 0 && !site.cfg.Proxy.AllowAnyHost && site.handler.RefuseHost(ctx) {
			return
		}
		if t.http80 == nil {
			srv.refuseUnknownHost(ctx) // no TLS site any more: nothing to redirect to
			return
		}
		t.http80(ctx)
	}
}

// getCertificate picks the certificate by SNI: the site that lists the name (or whose app allowed
// it on demand) hands it out. A name no site serves is refused without contacting any CA; with an
// on-demand site, the ACME manager asks that site's app first (tls.OnDemand).
func (srv *server) getCertificate(hello *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
	t := srv.sites.Load()
	name := siteHost([]byte(hello.ServerName))
	site := t.forName(context.Background(), name, false)
	if site == nil && t.acme != nil && t.acmeCfg.OnDemand != nil {
		return t.acme.GetCertificate(hello) // asks, within the order limits
	}
	if site == nil || site.certs == nil {
		return nil, t.refuser.Refuse(name)
	}
	return site.certs.GetCertificate(hello)
}

// onDemandAllowed is the ACME manager's on-demand check: the site that lists the name (a
// wildcard) or, for a name no site lists, each on-demand site in order, asks its app.
func (srv *server) onDemandAllowed(ctx context.Context, name string) bool {
	t := srv.sites.Load()
	if s := t.lookup(name); s != nil {
		return s.asker != nil && s.asker.allowed(ctx, name)
	}
	for _, s := range t.sites {
		if s.asker != nil && s.asker.allowed(ctx, name) {
			return true
		}
	}
	return false
}

// retire closes what the old table had and the new one does not: proxy handlers once their
// in-flight requests are done (bounded by the read timeout), certificate managers' watch loops.
func (srv *server) retire(old, cur *siteTable) {
	keep := map[*proxy.Handler]bool{}
	for _, s := range cur.sites {
		keep[s.handler] = true
	}
	for _, s := range old.sites {
		if keep[s.handler] {
			continue
		}
		go func() {
			deadline := time.Now().Add(s.cfg.Proxy.ReadTimeout + srv.settings.ShutdownTimeout + time.Minute)
			for s.inflight.Load() > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if err := s.handler.Close(); err != nil {
				srv.log.Warn().Err(err).Str("site", s.cfg.Name).Msg("closing the replaced proxy")
			}
		}()
	}
	srv.runManagers(cur)
}

// runManagers starts the watch loop (file reloads, expiry warnings) of each manager the table
// uses and stops those it no longer uses.
func (srv *server) runManagers(t *siteTable) {
	srv.mgrMu.Lock()
	defer srv.mgrMu.Unlock()
	if srv.runCtx == nil {
		return // not running yet: run starts them
	}
	if srv.mgrRuns == nil {
		srv.mgrRuns = map[*fdtls.Manager]context.CancelFunc{}
	}
	for m, stop := range srv.mgrRuns {
		if !slices.Contains(t.managers, m) {
			stop()
			delete(srv.mgrRuns, m)
		}
	}
	for _, m := range t.managers {
		if _, ok := srv.mgrRuns[m]; !ok {
			ctx, stop := context.WithCancel(srv.runCtx)
			srv.mgrRuns[m] = stop
			go m.Run(ctx)
		}
	}
}

// reloadSites applies a reloaded configuration's sites and proxies: a new table is built (changed
// sites get a new proxy handler, unchanged ones keep theirs) and swapped in. What cannot change
// without new listeners is refused by name. It returns the new table for the caller to swap in
// after the Pusher apps were accepted, or an error (then nothing changed).
func (srv *server) reloadSites(s settings) (*siteTable, []string, error) {
	var refused []string
	cur := srv.settings
	for _, c := range []struct{ name, was, now string }{
		{"listen", cur.Listen, s.Listen}, {"admin", cur.Admin, s.Admin},
		{"tls.https_addr", cur.TLS.HTTPSAddr, s.TLS.HTTPSAddr}, {"tls.http_addr", cur.TLS.HTTPAddr, s.TLS.HTTPAddr},
		{"redis.url", cur.Redis.URL, s.Redis.URL},
	} {
		if c.was != c.now {
			refused = append(refused, c.name)
		}
	}
	hadTLS, hasTLS := len(srv.sites.Load().managers) > 0, len(s.Sites) == 0 && s.TLS.Mode != fdtls.ModeOff || s.anySiteTLS()
	if hadTLS != hasTLS {
		return nil, nil, errors.New("TLS on or off: the TLS listeners start or stop only with a restart (frontdoor restart)")
	}
	t, err := srv.buildSites(s, srv.sites.Load())
	return t, refused, err
}
