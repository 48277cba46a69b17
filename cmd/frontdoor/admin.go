package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// adminServer answers operators on a separate listener (default 127.0.0.1:9601) so its paths
// never collide with the app's own routes — Laravel owns /up (docs/architecture.md).
func (srv *server) adminServer() *fasthttp.Server {
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(srv.metrics.registry, promhttp.HandlerOpts{}))
	var pprofHandler fasthttp.RequestHandler
	if srv.settings.Pprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pprofHandler = fasthttpadaptor.NewFastHTTPHandler(mux)
	}
	return &fasthttp.Server{
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch path := string(ctx.Path()); {
			case path == "/healthz":
				ctx.SetContentType("text/plain; charset=utf-8")
				ctx.SetBodyString("ok\n")
			case path == "/readyz":
				srv.serveReady(ctx)
			case path == "/metrics":
				metricsHandler(ctx)
			case pprofHandler != nil && len(path) >= len("/debug/pprof/") && path[:len("/debug/pprof/")] == "/debug/pprof/":
				pprofHandler(ctx)
			default:
				ctx.Error("not found: the admin listener serves /healthz, /readyz and /metrics\n", fasthttp.StatusNotFound)
			}
		},
	}
}

// serveReady reports 200 only when this node can do its whole job: listeners bound, certificates
// present, PHP reachable. A load balancer takes a node out of rotation on 503.
func (srv *server) serveReady(ctx *fasthttp.RequestCtx) {
	checks := map[string]string{}
	ok := true
	fail := func(name string, err error) {
		ok = false
		checks[name] = err.Error()
	}
	if !srv.ready.Load() {
		fail("listeners", errString("not serving (starting or shutting down)"))
	} else {
		checks["listeners"] = "ok"
	}
	if t := srv.sites.Load(); len(t.managers) > 0 {
		// ACME certificates arrive at their first handshake; every other source must have one loaded.
		checks["certificates"] = "ok"
		for _, m := range t.managers {
			if m != t.acme && len(m.Expiries()) == 0 {
				fail("certificates", errString("no certificate loaded"))
				break
			}
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if srv.broker != nil {
		// A node cut off from Redis still serves its own sockets, but a client sent here would
		// miss what other nodes publish: take it out of rotation until Redis is back.
		if err := srv.pusher.Ready(); err != nil {
			fail("cluster", err)
		} else {
			checks["cluster"] = "ok"
		}
	}
	checks["upstream"] = "ok"
	for _, site := range srv.sites.Load().sites {
		if err := site.handler.Ready(c); err != nil {
			fail("upstream", err)
			break
		}
	}
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetContentType("application/json")
	report := map[string]any{"ready": ok, "checks": checks}
	// Workers are reported, not checked: a crashing queue worker is no reason to take the node's
	// HTTP and WebSockets out of a load balancer.
	if ws := srv.workers.Status(); len(ws) > 0 {
		report["workers"] = ws
	}
	// The reconnect backlog: authorizations waiting for PHP (reported, not checked: a storm is
	// what the lane is for, and taking the node out would only move the storm).
	if l := srv.sites.Load().def.handler.AuthLane(); l.Slots > 0 {
		report["auth_lane"] = l
	}
	body, _ := json.Marshal(report)
	ctx.SetBody(append(body, '\n'))
}

type errString string

func (e errString) Error() string { return string(e) }
