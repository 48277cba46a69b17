package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Observer receives one call per request, for metrics; cmd/frontdoor implements it with
// Prometheus so this package does not depend on it.
type Observer interface {
	ObserveRequest(upstream string, status int, d time.Duration, bytes int64)
	ObserveUpstreamError(upstream, kind string)
}

type noObserver struct{}

func (noObserver) ObserveRequest(string, int, time.Duration, int64) {}
func (noObserver) ObserveUpstreamError(string, string)              {}

// Handler serves every non-Pusher request.
type Handler struct {
	cfg       Config
	log       zerolog.Logger
	upstreams []*httpUpstream
	next      atomic.Uint64
	observer  atomic.Pointer[observerBox]
}

// observerBox lets observers of different concrete types share one atomic pointer.
type observerBox struct{ Observer }

// New builds the handler; it logs where PHP is expected and whether it answers.
func New(cfg Config, log zerolog.Logger) (*Handler, error) {
	defaulted := len(cfg.Upstreams) == 0
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: log}
	h.observer.Store(&observerBox{noObserver{}})
	for _, u := range cfg.Upstreams {
		h.upstreams = append(h.upstreams, newHTTPUpstream(u, cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := h.Ready(ctx)
	cancel()
	switch {
	case err == nil:
		log.Info().Strs("upstreams", cfg.Upstreams).Str("root", cfg.Root).Msg("PHP upstream answers")
	case defaulted:
		log.Warn().Str("upstream", DefaultUpstream).Str("root", cfg.Root).
			Msg("no --upstream given and nothing answers on " + DefaultUpstream + ": pages will get 502 until PHP runs there (php artisan serve, Octane) or --upstream points elsewhere")
	default:
		log.Warn().Err(err).Strs("upstreams", cfg.Upstreams).Msg("PHP upstream does not answer yet: pages get 502 until it does")
	}
	return h, nil
}

// SetObserver installs the metrics hook.
func (h *Handler) SetObserver(o Observer) { h.observer.Store(&observerBox{o}) }

// Ready reports whether at least one upstream accepts connections (for /readyz).
func (h *Handler) Ready(ctx context.Context) error {
	var errs []error
	for _, u := range h.upstreams {
		d := net.Dialer{Timeout: h.cfg.ConnectTimeout}
		c, err := d.DialContext(ctx, "tcp", u.addr)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close releases idle upstream connections.
func (h *Handler) Close() error {
	for _, u := range h.upstreams {
		u.client.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP: a static file when one exists under the root, else the front controller through an
// upstream. Dotfiles are 404 (Nginx's Laravel block denies them); .php paths run index.php only.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	reqID := string(ctx.Request.Header.Peek("X-Request-Id"))
	if reqID == "" || len(reqID) > 128 {
		reqID = newRequestID()
		ctx.Request.Header.Set("X-Request-Id", reqID)
	}
	ctx.Response.Header.Set("X-Request-Id", reqID)
	upstream := "static"
	path := string(ctx.Path())
	switch {
	case hiddenPath(path):
		h.errorPage(ctx, fasthttp.StatusNotFound, "Not Found")
	default:
		if file, st := staticFile(h.cfg.Root, path); file != "" && (ctx.IsGet() || ctx.IsHead()) {
			serveStatic(ctx, file, st, path)
			break
		}
		if cl := ctx.Request.Header.ContentLength(); int64(cl) > h.cfg.MaxBody {
			h.errorPage(ctx, fasthttp.StatusRequestEntityTooLarge, "Request body too large")
			break
		}
		u := h.pick()
		upstream = u.name
		if kind, err := u.do(ctx, h.cfg); err != nil {
			h.observer.Load().ObserveUpstreamError(u.name, kind)
			status := fasthttp.StatusBadGateway
			if kind == "timeout" {
				status = fasthttp.StatusGatewayTimeout
			}
			h.log.Error().Err(err).Str("upstream", u.name).Str("request_id", reqID).Str("kind", kind).Msg("upstream failed")
			h.errorPage(ctx, status, fasthttp.StatusMessage(status))
		}
	}
	d := time.Since(start)
	status := ctx.Response.StatusCode()
	bytes := int64(ctx.Response.Header.ContentLength())
	h.observer.Load().ObserveRequest(upstream, status, d, max(bytes, 0))
	if h.cfg.AccessLog {
		h.log.Info().Str("method", string(ctx.Method())).Str("path", path).Int("status", status).Int64("bytes", max(bytes, 0)).
			Dur("duration", d).Str("upstream", upstream).Str("request_id", reqID).Str("remote", ctx.RemoteIP().String()).Msg("request")
	}
}

// pick chooses the next healthy upstream round-robin; when all are cooling down, the next anyway.
func (h *Handler) pick() *httpUpstream {
	n := len(h.upstreams)
	first := int(h.next.Add(1) % uint64(n))
	for i := range n {
		u := h.upstreams[(first+i)%n]
		if u.healthy() {
			return u
		}
	}
	return h.upstreams[first]
}

// errorPage answers with a small page: JSON when the client asks for JSON (Laravel's API
// clients), HTML otherwise. Never upstream details.
func (h *Handler) errorPage(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	id := string(ctx.Response.Header.Peek("X-Request-Id"))
	if strings.Contains(string(ctx.Request.Header.Peek("Accept")), "json") {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"message":"` + msg + `","request_id":"` + id + `"}` + "\n")
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBodyString("<!doctype html><title>" + msg + "</title><h1>" + msg + "</h1><p>Request id: " + id + "</p>\n")
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
