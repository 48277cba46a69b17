package main

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/proxy"
)

// On-demand TLS (Caddy's on_demand_tls { ask }): a site's app says which tenant domains may have
// a certificate. frontdoor asks GET {ask}?domain=name through the site's own proxy handler, in
// process and as from loopback (as webhooks reach PHP), and lets the tls package order only on
// 200. Answers are cached (allowed: for the process's life, which also routes the name to the
// site; refused: refused_ttl), asks for one name are coalesced, and asks across all sites are
// rate-limited, so a storm of unknown SNI names costs the app at most that rate.

// maxAskCache bounds the cached answers per site; refused answers go first when it is full.
const maxAskCache = 10000

type askAnswer struct {
	allowed bool
	until   time.Time // refused answers expire; allowed ones do not
}

type askCall struct {
	done    chan struct{}
	allowed bool
}

type onDemandAsker struct {
	site       string
	host       string // Host header of the ask: the site's first name, else localhost
	path       string
	refusedTTL time.Duration
	handler    atomic.Pointer[proxy.Handler] // the site's current handler (a reload may replace it)
	limit      *askLimiter
	srv        *server

	mu    sync.Mutex
	cache map[string]askAnswer
	calls map[string]*askCall

	asks atomic.Uint64 // requests made to the app, for tests and metrics
}

func (srv *server) newAsker(od *onDemandSettings, sc siteSettings) *onDemandAsker {
	host := "localhost"
	if len(sc.TLS.Domains) > 0 {
		host = sc.TLS.Domains[0]
	}
	return &onDemandAsker{site: sc.Name, host: host, path: od.Ask, refusedTTL: od.RefusedTTL, limit: srv.askLimit, srv: srv,
		cache: map[string]askAnswer{}, calls: map[string]*askCall{}}
}

// cached is the stored answer for name, if any, without asking.
func (a *onDemandAsker) cached(name string) (allowed, known bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[name]
	if !ok || (!e.allowed && time.Now().After(e.until)) {
		return false, false
	}
	return e.allowed, true
}

// allowed asks the app about name, once per name at a time, within the ask rate; an ask that the
// rate refuses counts as a refusal that is not remembered.
func (a *onDemandAsker) allowed(ctx context.Context, name string) bool {
	if ok, known := a.cached(name); known {
		return ok
	}
	if name == "" || len(name) > 253 || net.ParseIP(name) != nil {
		return false
	}
	a.mu.Lock()
	if c := a.calls[name]; c != nil {
		a.mu.Unlock()
		select {
		case <-c.done:
			return c.allowed
		case <-ctx.Done():
			return false
		}
	}
	if !a.limit.take() {
		a.mu.Unlock()
		a.srv.metrics.refusedRequest("on_demand_ask_rate")
		return false
	}
	c := &askCall{done: make(chan struct{})}
	a.calls[name] = c
	a.mu.Unlock()

	c.allowed = a.ask(name)

	a.mu.Lock()
	delete(a.calls, name)
	if len(a.cache) >= maxAskCache {
		for k, e := range a.cache {
			if !e.allowed {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxAskCache {
			clear(a.cache)
		}
	}
	a.cache[name] = askAnswer{allowed: c.allowed, until: time.Now().Add(a.refusedTTL)}
	a.mu.Unlock()
	close(c.done)
	return c.allowed
}

// ask makes one request to the app: GET {path}?domain=name. 200 allows; anything else refuses.
func (a *onDemandAsker) ask(name string) bool {
	a.asks.Add(1)
	h := a.handler.Load()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(a.path + "?domain=" + url.QueryEscape(name))
	req.Header.SetHost(a.host)
	req.Header.Set("User-Agent", "frontdoor-on-demand-tls")
	req.Header.Set("Accept", "application/json")
	var ctx fasthttp.RequestCtx
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	h.ServeHTTP(&ctx)
	_ = ctx.Response.Body() // drains a streamed answer, so the upstream exchange completes
	ok := ctx.Response.StatusCode() == fasthttp.StatusOK
	a.srv.log.Info().Str("site", a.site).Str("domain", name).Bool("allowed", ok).Int("status", ctx.Response.StatusCode()).
		Msg("on-demand TLS: asked the app")
	return ok
}

// askLimiter is a token bucket over the asks of every site.
type askLimiter struct {
	mu       sync.Mutex
	perMin   float64
	burst    float64
	tokens   float64
	last     time.Time
	refusals atomic.Uint64
}

func newAskLimiter(perMinute float64) *askLimiter {
	if perMinute <= 0 {
		perMinute = 60
	}
	burst := max(perMinute/6, 10) // ten seconds' worth, at least 10
	return &askLimiter{perMin: perMinute, burst: burst, tokens: burst, last: time.Now()}
}

func (l *askLimiter) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Minutes()*l.perMin)
	l.last = now
	if l.tokens < 1 {
		l.refusals.Add(1)
		return false
	}
	l.tokens--
	return true
}

var onDemandDesc = prometheus.NewDesc("frontdoor_on_demand_tls_total",
	"On-demand TLS: asks made to the sites' apps, orders started, issued and failed, handshakes refused (not_allowed, order_rate, backoff).",
	[]string{"event"}, nil)

// onDemandCollector exposes the on-demand counters (the ACME manager's and the asks), read per scrape.
type onDemandCollector struct{ srv *server }

func (c *onDemandCollector) Describe(ch chan<- *prometheus.Desc) { ch <- onDemandDesc }

func (c *onDemandCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.srv.sites.Load()
	if t == nil || t.acme == nil || t.acmeCfg.OnDemand == nil {
		return
	}
	var asks uint64
	for _, s := range t.sites {
		if s.asker != nil {
			asks += s.asker.asks.Load()
		}
	}
	st := t.acme.OnDemandStats()
	for _, v := range []struct {
		event string
		n     uint64
	}{{"ask", asks}, {"order", st.Orders}, {"issued", st.Issued}, {"failed", st.Failed},
		{"not_allowed", st.Refused}, {"order_rate", st.RateLimited}, {"backoff", st.BackedOff}} {
		ch <- prometheus.MustNewConstMetric(onDemandDesc, prometheus.CounterValue, float64(v.n), v.event)
	}
}
