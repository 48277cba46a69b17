package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// coolDown is how long an upstream that refused a connection is skipped (passive health).
const coolDown = 5 * time.Second

// health is passive health: an upstream that refused a connection is skipped for coolDown.
type health struct{ downUntil atomic.Int64 }

func (h *health) healthy() bool { return time.Now().UnixNano() >= h.downUntil.Load() }
func (h *health) mark()         { h.downUntil.Store(time.Now().Add(coolDown).UnixNano()) }

// httpUpstream is one HTTP server running the app (Octane, FrankenPHP, php artisan serve).
type httpUpstream struct {
	log    zerolog.Logger
	name   string
	addr   string
	cfg    Config
	client *fasthttp.HostClient
	down   health
}

func newHTTPUpstream(raw string, cfg Config, log zerolog.Logger) *httpUpstream {
	u, _ := url.Parse(raw)
	return &httpUpstream{
		log:  log,
		name: raw,
		addr: u.Host,
		cfg:  cfg,
		client: &fasthttp.HostClient{
			Addr: u.Host,
			// Timeouts live on the connection, per read and per write, as Nginx's
			// proxy_read_timeout: a streamed response (SSE) may last as long as it keeps talking.
			Dial: func(addr string) (net.Conn, error) {
				nc, err := net.DialTimeout("tcp", addr, cfg.ConnectTimeout)
				if err != nil {
					return nil, err
				}
				return &deadlineConn{Conn: rawIO(nc), read: lazyDeadline{d: cfg.ReadTimeout}, write: lazyDeadline{d: cfg.WriteTimeout}}, nil
			},
			MaxIdleConnDuration:           30 * time.Second,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
			StreamResponseBody:            true,
			MaxIdemponentCallAttempts:     2,
			// One retry, only for a request that can be sent again whole and failed the way a
			// kept connection the upstream already closed fails; never after a timeout.
			RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
				var ne net.Error
				retry := attempts < 2 && !req.IsBodyStream() && !(errors.As(err, &ne) && ne.Timeout()) &&
					!errors.Is(err, fasthttp.ErrTimeout) && (req.Header.IsGet() || req.Header.IsHead())
				return false, retry
			},
		},
	}
}

// deadlineConn bounds every read and write on an upstream connection.
type deadlineConn struct {
	net.Conn
	read, write lazyDeadline
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if at, move := c.read.next(); move {
		if err := c.Conn.SetReadDeadline(at); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if at, move := c.write.next(); move {
		if err := c.Conn.SetWriteDeadline(at); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// lazyDeadline keeps a connection's read or write deadline d ahead of the last call, but moves
// it only once a quarter of d has passed since it last moved: a timer update per quarter window
// instead of one per call (measurable on a small proxied request). The silence allowed is then
// between 3/4 of d and d. One goroutine at a time uses each.
type lazyDeadline struct {
	d     time.Duration
	moved time.Time
}

func (l *lazyDeadline) next() (time.Time, bool) {
	now := time.Now()
	if now.Sub(l.moved) <= l.d/4 {
		return time.Time{}, false
	}
	l.moved = now
	return now.Add(l.d), true
}

func (u *httpUpstream) id() string    { return u.name }
func (u *httpUpstream) healthy() bool { return u.down.healthy() }
func (u *httpUpstream) close()        { u.client.CloseIdleConnections() }

// ready dials the upstream once (for /readyz).
func (u *httpUpstream) ready(ctx context.Context) error {
	d := net.Dialer{Timeout: u.cfg.ConnectTimeout}
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// hopByHop are the headers that describe one connection, not the request (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// serve forwards the request with the body the handler buffered, or streaming from the client
// when the operator chose that, and streams the response back: fasthttp flushes each piece of a chunked body as it is read, so SSE and Laravel's
// StreamedResponse reach the client as the upstream sends them.
func (u *httpUpstream) serve(ctx *fasthttp.RequestCtx, x *exchange) error {
	if isWebSocketUpgrade(ctx) {
		return u.tunnel(ctx, x)
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()

	ctx.Request.Header.CopyTo(&req.Header)
	req.SetRequestURIBytes(ctx.Request.Header.RequestURI())
	req.Header.SetProtocol("HTTP/1.1") // an HTTP/2 request (cmd/frontdoor/h2.go) goes on as HTTP/1.1
	var limited *limitReader
	if b := x.body; b != nil { // read in full by the handler
		if b.stream != nil {
			req.SetBodyStream(b.stream, int(b.length))
		} else {
			req.SetBodyRaw(b.mem)
		}
	} else if stream := ctx.RequestBodyStream(); stream != nil { // --stream-request-bodies
		cl := ctx.Request.Header.ContentLength()
		if cl < 0 { // chunked: the limit is enforced as it streams
			limited = &limitReader{r: stream, left: u.cfg.MaxBody}
			req.SetBodyStream(limited, -1)
		} else {
			req.SetBodyStream(stream, cl)
		}
	} else {
		req.SetBodyRaw(ctx.Request.Body())
	}
	stripRequestHeaders(&req.Header)
	setForwarded(ctx, x.client, &req.Header)
	if x.h.sendfile != nil { // Symfony's BinaryFileResponse then answers with X-Sendfile
		req.Header.Set("X-Sendfile-Type", "X-Sendfile")
	}
	req.URI().SetHostBytes(ctx.Host()) // Host preserved, as Nginx's proxy_set_header Host $host
	if ctx.IsHead() {
		resp.SkipBody = true
	}

	if err := u.client.Do(req, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		switch {
		case limited != nil && limited.over:
			return failed(kindTooLarge, errBodyTooLarge)
		case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), isTimeout(err):
			return failed(kindTimeout, err)
		case isConnectError(err):
			u.down.mark()
			return failed(kindConnect, err)
		}
		return failed(kindProtocol, err)
	}
	stripHopByHop(&resp.Header)
	resp.Header.CopyTo(&ctx.Response.Header) // the upstream's X-Request-Id, if any, is replaced by ours
	ctx.Response.Header.Set("X-Request-Id", x.reqID)
	stream := resp.BodyStream()
	if stream == nil || ctx.IsHead() {
		if ctx.IsHead() {
			ctx.Response.SkipBody = true
			_ = resp.CloseBodyStream()
		} else {
			ctx.Response.SetBody(resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
		return nil
	}
	if cl := resp.Header.ContentLength(); cl >= 0 && cl <= fcgiInlineBody {
		// A small body of known length is read whole, as php-fpm's answers up to fcgiInlineBody
		// are: the connection goes back to the pool before the client is written to, and the
		// response leaves in one piece (compressed whole when it should be) instead of through
		// the stream machinery. An upstream that breaks off now gets a 502, not a cut body.
		err := readWhole(&ctx.Response, stream)
		closeUpstreamBody(resp, stream, err)
		fasthttp.ReleaseResponse(resp)
		if err != nil {
			if isTimeout(err) {
				return failed(kindTimeout, err)
			}
			return failed(kindProtocol, err)
		}
		return nil
	}
	x.deferred = true
	x.h.setBodyStream(ctx, &httpBody{u: u, resp: resp, stream: stream, x: x, status: resp.StatusCode()}, resp.Header.ContentLength())
	return nil
}

// readWhole appends a response body stream to dst up to its end (the stream stops at the
// Content-Length, and fails early on a short body).
func readWhole(dst *fasthttp.Response, src io.Reader) error {
	bp := chunkPool.Get().(*[]byte) // pooled: a buffer handed to a Read through an interface escapes
	defer chunkPool.Put(bp)
	buf := (*bp)[:cap(*bp)] // the FastCGI side puts its buffers back emptied
	for {
		n, err := src.Read(buf)
		dst.AppendBody(buf[:n])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// closeUpstreamBody ends a response body stream: the connection goes back to the pool when the
// body was read to its end without error, else it is closed.
func closeUpstreamBody(resp *fasthttp.Response, stream io.Reader, err error) {
	if rc, ok := stream.(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(err)
	} else {
		_ = resp.CloseBodyStream()
	}
}

// httpBody hands an upstream response body to fasthttp as it arrives and releases the upstream
// connection when fasthttp closes it.
type httpBody struct {
	u      *httpUpstream
	resp   *fasthttp.Response
	stream io.Reader
	x      *exchange
	status int
	n      int64
	err    error
}

func (b *httpBody) Read(p []byte) (int, error) {
	n, err := b.stream.Read(p)
	b.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
		kind := kindProtocol
		if isTimeout(err) {
			kind = kindTimeout
		}
		b.u.log.Error().Err(err).Str("upstream", b.u.name).Str("request_id", b.x.reqID).Str("kind", string(kind)).
			Msg("upstream failed while streaming the response")
		b.x.h.observer.Load().ObserveUpstreamError(b.u.name, string(kind))
	}
	return n, err
}

// Close returns the connection to the client's pool, or closes it when the body did not end.
func (b *httpBody) Close() error {
	closeUpstreamBody(b.resp, b.stream, b.err)
	fasthttp.ReleaseResponse(b.resp)
	b.x.finish(b.status, b.n)
	return nil
}

// limitReader fails a chunked request body that grows past MaxBody.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), l.left)]
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || strings.Contains(err.Error(), "connection refused")
}

// stripHopByHop removes a response's hop-by-hop headers (RFC 9110 §7.6.1) and those its
// Connection header names, whatever case they are written in: an HTTP upstream's response keeps
// the upstream's case (fasthttp does not normalize it), and Node or Go write "keep-alive" and
// "connection" in lower case.
//
// Like stripRequestHeaders, it looks at each header and deletes only those present: a Del per
// listed name would scan every header for each of them, on every request and response. The two
// stay separate loops over their own header types: passing h.All() to a shared function makes
// the range bodies escape, 12 allocations per request (TestServeHTTPUpstreamAllocs).
func stripHopByHop(h *fasthttp.ResponseHeader) {
	var c connectionValues
	for k, v := range h.All() {
		c.note(k, v)
	}
	var drop []string
	for k := range h.All() {
		if c.drops(k, false) {
			drop = append(drop, string(k)) // a copy: Del changes the header
		}
	}
	for _, k := range drop {
		h.Del(k)
	}
}

// stripRequestHeaders removes from a request going upstream its hop-by-hop headers, those its
// Connection header names, and what a PHP server behind us would misread: Proxy, which becomes
// HTTP_PROXY (httpoxy, CVE-2016-5385); names with an underscore, which CGI-style servers
// (php artisan serve, FrankenPHP) map onto the same HTTP_* variable as the hyphenated name, so
// X-Forwarded_For could pass for X-Forwarded-For (Nginx drops both by default too); and every
// forwarding header the client sent (clientForwarding), which setForwarded then sets fresh.
func stripRequestHeaders(h *fasthttp.RequestHeader) {
	var c connectionValues
	for k, v := range h.All() {
		c.note(k, v)
	}
	var drop []string
	for k := range h.All() {
		if c.drops(k, true) {
			drop = append(drop, string(k))
		}
	}
	for _, k := range drop {
		h.Del(k)
	}
}

// connectionValues are the values of a message's Connection headers (up to four), which name
// more hop-by-hop headers. They point into the header and stay valid until it changes.
type connectionValues struct {
	v [4][]byte
	n int
}

func (c *connectionValues) note(k, v []byte) {
	if c.n < len(c.v) && asciiEqualFold(k, "Connection") {
		c.v[c.n] = v
		c.n++
	}
}

// drops reports a header that goes: hop-by-hop or named by Connection, and with unsafe the
// request headers stripRequestHeaders lists.
func (c *connectionValues) drops(k []byte, unsafe bool) bool {
	return hopByHopName(k) || connectionNames(c.v[:c.n], k) ||
		unsafe && (bytes.IndexByte(k, '_') >= 0 || clientForwarding(k) || asciiEqualFold(k, "Proxy"))
}

// hopByHopName reports one of hopByHop in any case.
func hopByHopName(name []byte) bool {
	for _, n := range hopByHop {
		if asciiEqualFold(name, n) {
			return true
		}
	}
	return false
}

// connectionNames reports a header named in one of the Connection values given.
func connectionNames(values [][]byte, name []byte) bool {
	for _, v := range values {
		for tok := range bytes.SplitSeq(v, []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// setForwarded sets the X-Forwarded-* headers fresh, after stripRequestHeaders removed the
// client's. When frontdoor is the edge the peer is the client and X-Forwarded-For is its
// address alone. Behind a trusted balancer (ResolveClient) the chain it sent is kept with the
// balancer appended, as every proxy on the way does, so an app that trusts the same ranges
// (Laravel's TrustProxies) walks it to the same client; X-Real-IP is that client, and
// -Proto, -Host and -Port are what the balancer said.
func setForwarded(ctx *fasthttp.RequestCtx, c Client, h *fasthttp.RequestHeader) {
	// Built in stack buffers and set under keys already canonical: this runs on every request.
	var pbuf [64]byte
	peer := c.Peer.AppendTo(pbuf[:0])
	if !c.Peer.IsValid() {
		peer = append(peer, ctx.RemoteIP().String()...)
	}
	xff := peer
	if c.Trusted {
		chain := c.Chain
		if chain == "" && c.Addr != c.Peer { // from CF-Connecting-IP
			chain = c.Addr.String()
		}
		if chain != "" {
			xff = append(append([]byte(chain), ", "...), peer...)
		}
	}
	h.SetCanonical(hdrXForwardedFor, xff)
	var portBuf [8]byte
	proto, port := "http", append(portBuf[:0], "80"...)
	if c.HTTPS {
		proto, port = "https", append(portBuf[:0], "443"...)
	}
	if c.HTTPS == ctx.IsTLS() {
		if ta, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
			port = strconv.AppendInt(portBuf[:0], int64(ta.Port), 10)
		} else if _, p, err := net.SplitHostPort(ctx.LocalAddr().String()); err == nil {
			port = append(portBuf[:0], p...)
		}
	}
	if c.Port != "" {
		port = append(portBuf[:0], c.Port...)
	}
	host := ctx.Host()
	if c.Host != "" {
		host = []byte(c.Host)
	}
	h.SetCanonical(hdrXForwardedProto, []byte(proto))
	h.SetCanonical(hdrXForwardedHost, host)
	h.SetCanonical(hdrXForwardedPort, port)
	real := peer
	if c.Addr.IsValid() && c.Addr != c.Peer {
		var rbuf [64]byte
		real = c.Addr.AppendTo(rbuf[:0])
	}
	h.SetCanonical(hdrXRealIP, real)
}

// Header names as fasthttp's normalization writes them, for SetCanonical.
var (
	hdrXForwardedFor   = []byte("X-Forwarded-For")
	hdrXForwardedProto = []byte("X-Forwarded-Proto")
	hdrXForwardedHost  = []byte("X-Forwarded-Host")
	hdrXForwardedPort  = []byte("X-Forwarded-Port")
	hdrXRealIP         = []byte("X-Real-Ip")
	hdrXRequestID      = []byte("X-Request-Id")
)

// clientForwarding reports a header that describes the connection as a proxy saw it: the
// client's address, scheme, host, port or path prefix (X-Forwarded-* whatever the suffix,
// Forwarded, X-Real-IP, Client-IP and the CDN variants, X-Original-URL and X-Rewrite-URL,
// which IIS-style routers read as the path), or what the front server offers PHP
// (X-Sendfile-Type, X-Accel-Mapping). frontdoor is the edge, so a client that sends one
// is lying about itself: Laravel's TrustProxies (X-Forwarded-Prefix by default) and Symfony's
// request would believe it. Both upstream kinds drop these; a trusted-proxies setting would
// make its exception here.
func clientForwarding(name []byte) bool {
	if len(name) > len("X-Forwarded-") && asciiEqualFold(name[:len("X-Forwarded-")], "X-Forwarded-") {
		return true
	}
	for _, n := range forwardingHeaders {
		if asciiEqualFold(name, n) {
			return true
		}
	}
	return false
}

var forwardingHeaders = []string{"Forwarded", "X-Real-IP", "X-Original-URL", "X-Rewrite-URL",
	"Client-IP", "CF-Connecting-IP", "True-Client-IP",
	// What a front server tells Symfony's BinaryFileResponse: a client's own would make PHP
	// answer with X-Sendfile (or map paths through X-Accel-Mapping) where frontdoor did not ask.
	"X-Sendfile-Type", "X-Accel-Mapping"}
