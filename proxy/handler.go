package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
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
	docRoot   *docRoot  // Config.Root; nil when there is none
	releases  *releases // previous releases' hashed assets; nil when off or without a root
	log       zerolog.Logger
	upstreams []backend
	next      atomic.Uint64
	observer  atomic.Pointer[observerBox]
	hosts     []string    // Config.Hosts as hostName gives them
	compress  *compressor // nil when Config.DisableCompression
	trusted   *TrustedProxies
	sendfile  []sendfileRoot   // Config.SendfileRoots; nil when X-Sendfile is off
	bodies    bodyBudget       // request bodies being buffered
	refusals  *ratelog.Limiter // lines about refused requests
}

// backend is one upstream running the app: php-fpm over FastCGI, or an HTTP server.
type backend interface {
	id() string
	healthy() bool
	// serve forwards ctx and sets the response, or returns why it could not (kindOf tells the
	// failKind).
	// When it leaves a body stream on the response it sets x.deferred and calls x.finish
	// once the body is written.
	serve(ctx *fasthttp.RequestCtx, x *exchange) error
	ready(ctx context.Context) error
	close()
}

// newLogLimiter bounds the proxy's lines about refused requests and PHP's stderr: a burst of
// 20, then 20 a second; the rest are counted in the next line's "suppressed".
func newLogLimiter() *ratelog.Limiter { return ratelog.New(20, time.Second/20) }

// exchange is what the access log and metrics need of one request, kept past the handler's
// return when the response body streams.
type exchange struct {
	h        *Handler
	start    time.Time
	method   string
	path     string // cleaned, for routing
	reqID    string
	upstream string
	deferred bool
	body     *requestBody // the buffered request body, released by finish
	inline   requestBody  // body points here when fasthttp held the whole body
	client   Client       // who the request is from (ResolveClient)
	quiet    bool         // finish releases but does not record (a response replaced by sendfile)
	// For the access log only (noteAccess).
	target, query, remote, userAgent, referer string
}

// finish records the request once its response is complete.
func (x *exchange) finish(status int, bytes int64) {
	if x.body != nil {
		x.body.close()
		x.body = nil
	}
	if x.quiet {
		return
	}
	d := time.Since(x.start)
	x.h.observer.Load().ObserveRequest(x.upstream, status, d, max(bytes, 0))
	if x.h.cfg.AccessLog {
		x.h.log.Info().Str("method", x.method).Str("path", x.target).Str("query", x.query).Int("status", status).
			Int64("bytes", max(bytes, 0)).Float64("duration_ms", float64(d.Microseconds())/1000).Str("upstream", x.upstream).
			Str("request_id", x.reqID).Str("remote", x.remote).Str("user_agent", x.userAgent).Str("referer", x.referer).Msg("request")
	}
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
	if cfg.Root != "" {
		// php-fpm runs SCRIPT_FILENAME as given: it must be absolute.
		if abs, err := filepath.Abs(cfg.Root); err == nil {
			cfg.Root = abs
		}
	}
	h := &Handler{cfg: cfg, log: log, refusals: newLogLimiter()}
	var err error
	if h.trusted, err = ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	h.bodies.limit = cfg.BodyBufferLimit
	if !cfg.DisableCompression {
		h.compress = &compressor{level: cfg.CompressLevel, slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	}
	for _, n := range cfg.Hosts {
		h.hosts = append(h.hosts, hostName(n))
	}
	if cfg.Root != "" {
		if h.docRoot, err = openDocRoot(cfg.Root, cfg.SymlinkRoots); err != nil {
			return nil, fmt.Errorf("root: %w", err)
		}
		if cfg.PreviousReleases > 0 {
			h.releases = newReleases(cfg, log)
			h.docRoot.switched = h.releases.switched
			go h.releases.watch(h.docRoot)
		}
	}
	if h.sendfile, err = openSendfileRoots(cfg.SendfileRoots, cfg.Root); err != nil {
		return nil, err
	}
	h.observer.Store(&observerBox{noObserver{}})
	for _, u := range cfg.Upstreams {
		if strings.HasPrefix(u, "fastcgi:") {
			h.upstreams = append(h.upstreams, newFCGIUpstream(u, cfg, log))
		} else {
			h.upstreams = append(h.upstreams, newHTTPUpstream(u, cfg, log))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err = h.Ready(ctx)
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
		err := u.ready(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close releases idle upstream connections and the root directory.
func (h *Handler) Close() error {
	if h.releases != nil {
		h.releases.close()
	}
	if h.docRoot != nil {
		h.docRoot.close()
	}
	for _, r := range h.sendfile {
		r.root.Close()
	}
	for _, u := range h.upstreams {
		u.close()
	}
	return nil
}

// ServeHTTP: a static file when one exists under the root, else the front controller through an
// upstream. Dotfiles are 404 (Nginx's Laravel block denies them); .php paths run index.php only.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	x := &exchange{h: h, start: time.Now(), upstream: "static"}
	x.reqID = requestID(ctx)
	x.path = string(ctx.Path())
	x.method = methodName(ctx.Method())
	x.client = h.ResolveClient(ctx)
	if h.cfg.AccessLog {
		x.noteAccess(ctx)
	}
	switch {
	case hiddenPath(x.path):
		h.errorPage(ctx, fasthttp.StatusNotFound, "Not Found")
	default:
		if h.docRoot != nil && (ctx.IsGet() || ctx.IsHead()) {
			if rel, ok := staticRel(x.path); ok {
				rs := h.docRoot.get()
				if src, ok := openStatic(rs, rel); ok {
					h.serveStatic(ctx, rs, rel, src)
					break
				}
				if h.releases != nil && hashedAsset(rel, h.releases.buildDir) {
					h.releases.serve(ctx, h, rel)
					break
				}
			}
		}
		if cl := ctx.Request.Header.ContentLength(); int64(cl) > h.cfg.MaxBody {
			x.upstream = "-" // refused before any upstream was chosen
			h.refuseBody(ctx, x, kindTooLarge, fmt.Errorf("%w: Content-Length %d", errBodyTooLarge, cl))
			break
		}
		stripped := h.stripETagSuffixes(ctx)
		u := h.pick()
		x.upstream = u.id()
		if h.buffers(ctx, u) {
			var err error
			if x.body, err = h.bufferBody(ctx, &x.inline); err != nil {
				h.refuseBody(ctx, x, failureKind(err), err)
				break
			}
		}
		if err := u.serve(ctx, x); err != nil {
			switch kind := kindOf(err); kind {
			case kindTooLarge, kindClient, kindSlow, kindBusy, kindAuthBusy:
				h.refuseBody(ctx, x, kind, err)
			default:
				h.observer.Load().ObserveUpstreamError(x.upstream, string(kind))
				status := fasthttp.StatusBadGateway
				if kind == kindTimeout {
					status = fasthttp.StatusGatewayTimeout
				}
				h.log.Error().Err(err).Str("upstream", x.upstream).Str("request_id", x.reqID).Str("kind", string(kind)).Msg("upstream failed")
				h.errorPage(ctx, status, fasthttp.StatusMessage(status))
			}
		} else if !h.serveSendfile(ctx, x) && !x.deferred {
			restoreETagSuffix(ctx, stripped)
			h.compressBody(ctx)
		}
	}
	if !x.deferred {
		// Body() would read a body stream (a static file) into memory: ask the header instead.
		n := int64(ctx.Response.Header.ContentLength())
		if !ctx.Response.IsBodyStream() {
			n = int64(len(ctx.Response.Body()))
		}
		x.finish(ctx.Response.StatusCode(), n)
	}
}

// methodName is the request's method as a string, for the access log: the usual ones without
// a copy per request.
func methodName(m []byte) string {
	for _, k := range [...]string{fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodHead, fasthttp.MethodPut,
		fasthttp.MethodPatch, fasthttp.MethodDelete, fasthttp.MethodOptions} {
		if string(m) == k {
			return k
		}
	}
	return string(m)
}

// buffers reports whether the request body is read in full before u sees the request: always
// for php-fpm, and for an HTTP upstream unless the operator chose streaming. A WebSocket
// upgrade has no body and tunnels as it is.
func (h *Handler) buffers(ctx *fasthttp.RequestCtx, u backend) bool {
	if _, ok := u.(*httpUpstream); ok {
		return !h.cfg.StreamRequestBodies && !isWebSocketUpgrade(ctx)
	}
	return true
}

// refuseBody answers a request whose body could not be taken: the client's fault (too large,
// broken, too slow) or ours (the buffers are full), never PHP's, so no upstream error.
func (h *Handler) refuseBody(ctx *fasthttp.RequestCtx, x *exchange, kind failKind, err error) {
	status, msg := fasthttp.StatusBadRequest, "Bad request body"
	switch kind {
	case kindTooLarge:
		status, msg = fasthttp.StatusRequestEntityTooLarge, "Request body too large"
		lingerDrain(ctx)
	case kindSlow:
		status, msg = fasthttp.StatusRequestTimeout, "Request body timeout"
		ctx.SetConnectionClose()
	case kindBusy:
		status, msg = fasthttp.StatusServiceUnavailable, "Server busy, try again"
		lingerDrain(ctx)
	case kindAuthBusy:
		status, msg = fasthttp.StatusServiceUnavailable, "Too many authorizations at once, try again"
	default:
		if kind != kindClient { // reading into the temporary file failed: ours
			status, msg = fasthttp.StatusInternalServerError, "Internal Server Error"
			h.log.Error().Err(err).Str("request_id", x.reqID).Msg("cannot buffer the request body")
			h.errorPage(ctx, status, msg)
			return
		}
	}
	if dropped, ok := h.refusals.Allow(); ok {
		ev := h.log.Info().Err(err).Str("request_id", x.reqID).Str("path", x.path).Int("status", status)
		if dropped > 0 {
			ev = ev.Uint64("suppressed", dropped)
		}
		if kind == kindAuthBusy {
			ev.Msg("authorization refused: the lane for /broadcasting/auth is full")
		} else {
			ev.Msg("request body refused")
		}
	}
	h.errorPage(ctx, status, msg)
	if lf := (laneFull{}); errors.As(err, &lf) {
		ctx.Response.Header.Set("Retry-After", lf.header())
	}
}

// pick chooses the next healthy upstream round-robin; when all are cooling down, the next anyway.
func (h *Handler) pick() backend {
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
// clients), HTML otherwise. Never upstream details. The request id was checked by requestID;
// it is escaped here all the same, so no path can put markup or quotes into the page.
func (h *Handler) errorPage(ctx *fasthttp.RequestCtx, status int, msg string) {
	id := string(ctx.Response.Header.Peek("X-Request-Id"))
	ctx.Response.Reset() // nothing of a failed upstream answer survives
	ctx.Response.Header.Set("X-Request-Id", id)
	ctx.SetStatusCode(status)
	if wantsJSON(&ctx.Request.Header) {
		ctx.SetContentType("application/json")
		b, _ := json.Marshal(struct {
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		}{msg, id})
		ctx.SetBody(append(b, '\n'))
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	m, i := html.EscapeString(msg), html.EscapeString(id)
	ctx.SetBodyString("<!doctype html><title>" + m + "</title><h1>" + m + "</h1><p>Request id: " + i + "</p>\n")
}

// wantsJSON says whether an error page goes out as JSON: when Laravel's $request->expectsJson()
// would say so (Accept names JSON, or X-Requested-With: XMLHttpRequest from axios and jQuery),
// and for a request that sends JSON itself (the Pusher SDKs' signed API calls send no Accept).
func wantsJSON(h *fasthttp.RequestHeader) bool {
	return bytes.Contains(h.Peek("Accept"), []byte("json")) ||
		bytes.Equal(h.Peek("X-Requested-With"), []byte("XMLHttpRequest")) ||
		bytes.Contains(h.ContentType(), []byte("json"))
}

// requestID returns the request's id: the client's X-Request-Id when it is an id (1 to 128 of
// A-Z a-z 0-9 . _ -, what load balancers and tracing libraries send), else a new one, which
// then replaces the client's on the way upstream. It is set on the response too. Anything
// else (markup, quotes, control bytes) would reach logs, error pages and PHP as it came.
func requestID(ctx *fasthttp.RequestCtx) string {
	id := ctx.Request.Header.Peek("X-Request-Id")
	if !validRequestID(id) {
		var b [2 * requestIDBytes]byte
		id = appendRequestID(b[:0])
		ctx.Request.Header.SetCanonical(hdrXRequestID, id)
	}
	ctx.Response.Header.SetCanonical(hdrXRequestID, id)
	return string(id)
}

func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Request ids are a random per-process prefix and a counter: unique across processes and
// restarts without a getrandom call per request. They identify, they do not authorize.
var (
	requestIDPrefix = func() (p [6]byte) { _, _ = rand.Read(p[:]); return p }()
	requestIDSeq    atomic.Uint64
)

// requestIDBytes is the length of a new id before hex encoding.
const requestIDBytes = 12

// appendRequestID appends a new id, in hex, to dst.
func appendRequestID(dst []byte) []byte {
	var b [requestIDBytes]byte
	copy(b[:6], requestIDPrefix[:])
	n := requestIDSeq.Add(1)
	for i := requestIDBytes - 1; i >= 6; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return hex.AppendEncode(dst, b[:])
}

// A refused request body is read and thrown away, up to lingerBytes or for lingerTime, before
// the connection closes: closing a socket with unread data makes the kernel send a reset, and a
// client still uploading then sees "connection reset" instead of the 413 (Nginx's lingering
// close does the same). Beyond either bound the connection closes anyway.
const (
	lingerBytes = 16 << 20
	lingerTime  = 10 * time.Second
)

func lingerDrain(ctx *fasthttp.RequestCtx) {
	bs := ctx.RequestBodyStream()
	if bs == nil {
		return
	}
	ctx.SetConnectionClose()
	_ = ctx.Conn().SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, bs, lingerBytes)
}
