package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

const (
	// fcgiReadBuffer is each connection's read buffer; STDOUT bytes are handed on from it
	// without another copy.
	fcgiReadBuffer = 32 << 10
	// fcgiChunk is the most request body bytes sent in one STDIN record, and the most response
	// bytes gathered into one write to the client.
	fcgiChunk = 32 << 10
	// fcgiInlineBody is the largest response answered from memory when all of it has arrived
	// with the headers; larger or slower responses stream.
	fcgiInlineBody = 64 << 10
	// fcgiInlineStdin is the largest request body written with the params in one write; larger
	// bodies are written by a goroutine while the response is read, so neither side can block
	// the other on full socket buffers.
	fcgiInlineStdin = 64 << 10
	// fcgiMaxHeader bounds the CGI header block (Nginx's fastcgi_buffer_size is 4–8 KiB; Laravel
	// cookies can be large, so allow more). Beyond it: 502.
	fcgiMaxHeader = 256 << 10
	// fcgiMaxIdle bounds the idle connections kept per upstream.
	fcgiMaxIdle = 64
	// fcgiIdleTimeout closes a connection unused this long: each one pins a php-fpm worker that
	// another client of the same pool (a second frontdoor during a restart, cron through
	// cgi-fcgi) may be waiting for. Short, because a new unix or loopback connection is cheap.
	fcgiIdleTimeout = 2 * time.Second
)

// fcgiUpstream is one php-fpm pool, over TCP or a unix socket.
type fcgiUpstream struct {
	name    string
	network string
	addr    string
	cfg     Config
	log     zerolog.Logger
	down    health
	stderrs logLimiter

	pool
}

func newFCGIUpstream(raw string, cfg Config, log zerolog.Logger) *fcgiUpstream {
	network, addr, maxConns := fcgiAddr(raw)
	u := &fcgiUpstream{name: raw, network: network, addr: addr, cfg: cfg, log: log}
	u.pool.maxConns = maxConns
	u.stop = make(chan struct{})
	go u.reap()
	return u
}

// fcgiAddr splits fastcgi://host:port and fastcgi:///path/to.sock, with the optional
// ?max_conns=N (see pool).
func fcgiAddr(raw string) (network, addr string, maxConns int) {
	p, err := url.Parse(raw)
	if err != nil {
		return "tcp", raw, 0
	}
	maxConns, _ = strconv.Atoi(p.Query().Get("max_conns"))
	if p.Host == "" {
		return "unix", p.Path, maxConns
	}
	return "tcp", p.Host, maxConns
}

func (u *fcgiUpstream) id() string    { return u.name }
func (u *fcgiUpstream) healthy() bool { return u.down.healthy() }

// fcgiConn is one connection to php-fpm.
type fcgiConn struct {
	u        *fcgiUpstream
	nc       net.Conn
	br       *bufio.Reader
	r        fcgiReader
	reused   bool
	fresh    bool // counted in u.pending
	dead     bool // closed and no longer counted in u.open
	lastUsed time.Time
	reqID    string       // of the request in flight, for stderr lines
	wdl      lazyDeadline // writes: the params, then the STDIN writer, never both at once
}

// write sends b within the write timeout.
func (c *fcgiConn) write(b []byte) error {
	if at, move := c.wdl.next(); move {
		if err := c.nc.SetWriteDeadline(at); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(b)
	return err
}

// onStderr logs what PHP wrote to FCGI_STDERR (error_log(), notices), rate-limited.
func (c *fcgiConn) onStderr(b []byte) {
	ok, dropped := c.u.stderrs.allow()
	if !ok {
		return
	}
	ev := c.u.log.Warn().Str("upstream", c.u.name).Str("request_id", c.reqID)
	if dropped > 0 {
		ev = ev.Int("suppressed", dropped)
	}
	ev.Bytes("stderr", bytes.TrimSpace(truncate(b, 4096))).Msg("php stderr")
}

// timeoutReader bounds each read from php-fpm: ReadTimeout is the longest silence allowed
// between two reads, as Nginx's fastcgi_read_timeout (see lazyDeadline).
type timeoutReader struct {
	nc  net.Conn
	rdl lazyDeadline
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	if at, move := t.rdl.next(); move {
		if err := t.nc.SetReadDeadline(at); err != nil {
			return 0, err
		}
	}
	return t.nc.Read(p)
}

// Failure kinds an upstream reports to the handler (and to metrics).
const (
	kindConnect  = "connect"   // refused or unreachable: 502, upstream cools down
	kindTimeout  = "timeout"   // connect, read or write timeout: 504
	kindProtocol = "protocol"  // the upstream broke the protocol or closed early: 502
	kindClient   = "client"    // the client's request body failed: 400
	kindTooLarge = "too_large" // the body went over MaxBody while it streamed: 413
	kindSlow     = "slow_body" // the client stalled mid-body past BodyTimeout: 408
	kindBusy     = "busy"      // buffered bodies are over BodyBufferLimit: 503
)

// clientError marks a failure reading the client's body, not the upstream's fault.
type clientError struct{ error }

func (e clientError) Unwrap() error { return e.error }

func failureKind(err error) string {
	var ne net.Error
	var ce clientError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return kindTooLarge
	case errors.Is(err, errBodyBudget):
		return kindBusy
	case errors.As(err, &ce) && errors.As(err, &ne) && ne.Timeout():
		return kindSlow
	case errors.As(err, &ce):
		return kindClient
	case errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	}
	return kindProtocol
}

var (
	paramsPool = sync.Pool{New: func() any { return new([]byte) }}
	chunkPool  = sync.Pool{New: func() any { b := make([]byte, fcgiHeaderLen+fcgiChunk); return &b }}
)

// serve runs the front controller for ctx with the body the handler buffered (x.body). On
// success the response is set on ctx, either in full or as a body stream that keeps the
// connection until fasthttp has written it.
func (u *fcgiUpstream) serve(ctx *fasthttp.RequestCtx, x *exchange) (string, error) {
	body := x.body
	if body == nil {
		body = &requestBody{mem: ctx.Request.Body()}
	}
	length := body.size()

	pp := paramsPool.Get().(*[]byte)
	defer paramsPool.Put(pp)
	real := u.cfg.Root
	if d := x.h.docRoot; d != nil {
		real = d.get().real
	}
	pairs := appendParams((*pp)[:0], ctx, u.cfg.Root, real, u.cfg.FrontController, x.h.serverName(ctx), length)
	// The request's first bytes: BEGIN_REQUEST, the PARAMS stream and its end (§5.1, §5.2), and
	// a small in-memory body with the end of STDIN.
	out := appendBeginRequest(make([]byte, 0, 2*fcgiHeaderLen+len(pairs)+len(body.mem)+64))
	out = appendStream(out, fcgiParams, pairs)
	out = appendRecordHeader(out, fcgiParams, 0)
	inline := body.stream == nil && len(body.mem) <= fcgiInlineStdin
	if inline {
		out = appendStream(out, fcgiStdin, body.mem)
		out = appendRecordHeader(out, fcgiStdin, 0)
	}
	*pp = pairs

	for attempt := 0; ; attempt++ {
		c, err := u.get(inline && attempt == 0)
		if errors.Is(err, errPoolWait) {
			return kindTimeout, err
		}
		if err != nil {
			kind := kindConnect
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				kind = kindTimeout
			}
			u.down.mark()
			return kind, err
		}
		c.reqID = x.reqID
		c.r.reset(c.br, c.onStderr)
		kind, err, retry := u.roundTrip(ctx, x, c, out, *body, inline)
		if err == nil {
			return "", nil
		}
		// A kept connection can die between the liveness check and our write (a worker
		// exiting). Try once more on a fresh connection when nothing of the request is lost.
		if retry && c.reused && attempt == 0 {
			continue
		}
		return kind, err
	}
}

// roundTrip runs one request on c. retry reports a failure before any response byte with the
// body still unread, so the request may go again.
func (u *fcgiUpstream) roundTrip(ctx *fasthttp.RequestCtx, x *exchange, c *fcgiConn, out []byte, body requestBody, inline bool) (kind string, err error, retry bool) {
	if err := c.write(out); err != nil {
		c.discard()
		return failureKind(err), err, true
	}
	var stdin chan error
	if !inline {
		stdin = make(chan error, 1)
		go c.writeStdin(body, stdin)
	}
	// fail closes the connection, which also stops the STDIN writer, and waits for it: the
	// client's body stream belongs to fasthttp once we return.
	fail := func(err error) (string, error, bool) {
		c.discard()
		if stdin != nil {
			if werr := <-stdin; werr != nil {
				var ce clientError
				if errors.As(werr, &ce) || errors.Is(werr, errBodyTooLarge) {
					err = werr // the client's fault explains the upstream's failure
				}
			}
		}
		return failureKind(err), err, false
	}

	hdr := cgiHeaders{limit: fcgiMaxHeader}
	var rest []byte
	for got := false; ; got = true {
		chunk, err := c.r.next(fcgiChunk)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("fastcgi: response ended before its headers")
			}
			k, e, _ := fail(err)
			return k, e, !got && inline && failureKind(err) == kindProtocol
		}
		c.settle()
		var done bool
		if rest, done, err = hdr.feed(chunk); err != nil {
			return fail(err)
		}
		if done {
			break
		}
	}
	var fieldsArr [24]cgiField
	status, fields, err := hdr.parse(fieldsArr[:0])
	if err != nil {
		return fail(err)
	}
	cl := applyCGIHeaders(&ctx.Response, status, fields)

	// Gather what has already arrived: most responses are complete here and go out from memory,
	// with the connection back in the pool before fasthttp writes a byte.
	pre := chunkPool.Get().(*[]byte)
	buf := append((*pre)[:0], rest...)
	ended := false
	for len(buf) < fcgiInlineBody && c.r.ready() {
		chunk, err := c.r.next(fcgiChunk)
		if errors.Is(err, io.EOF) {
			ended = true
			break
		}
		if err != nil {
			*pre = buf[:0]
			chunkPool.Put(pre)
			return fail(err)
		}
		buf = append(buf, chunk...)
	}
	if !ended && c.r.ended {
		ended = true
	}
	if ended {
		err := c.finish(stdin)
		stdin = nil // consumed by finish
		if err != nil {
			*pre = buf[:0]
			chunkPool.Put(pre)
			return fail(err)
		}
		if ctx.IsHead() {
			// PHP sends no body for HEAD; the length it announced is the GET's (RFC 9110 §9.3.2).
			ctx.Response.SkipBody = true
			if cl >= 0 {
				ctx.Response.Header.SetContentLength(cl)
			}
		} else {
			ctx.Response.SetBody(buf)
		}
		*pre = buf[:0]
		chunkPool.Put(pre)
		return "", nil, false
	}
	if ctx.IsHead() { // no body goes out; the rest of PHP's output is not worth the wait
		*pre = buf[:0]
		chunkPool.Put(pre)
		fail(nil)
		if cl >= 0 {
			ctx.Response.Header.SetContentLength(cl)
		}
		return "", nil, false
	}
	x.deferred = true
	b := &fcgiBody{c: c, pre: pre, buf: buf, stdin: stdin, x: x, status: status}
	ctx.Response.SetBodyStream(b, cl)
	return "", nil, false
}

// finish checks END_REQUEST and the STDIN writer (whose result it always consumes), then
// returns the connection to the pool.
func (c *fcgiConn) finish(stdin chan error) error {
	if stdin != nil {
		select {
		case err := <-stdin:
			if err != nil {
				c.discard()
				return err
			}
		default:
			// PHP ended without taking all of STDIN (php-fpm drains it first, so this is
			// rare): the connection is mid-record and cannot be reused.
			c.discard()
			if err := <-stdin; err != nil {
				var ce clientError
				if errors.As(err, &ce) {
					return err
				}
			}
			return nil
		}
	}
	if c.r.protoStatus != fcgiRequestComplete {
		c.discard()
		return fmt.Errorf("fastcgi: END_REQUEST protocol status %d", c.r.protoStatus)
	}
	c.put()
	return nil
}

// writeStdin streams the body as STDIN records and ends the stream (§5.3), reporting on done.
func (c *fcgiConn) writeStdin(body requestBody, done chan<- error) {
	done <- c.copyStdin(body)
}

func (c *fcgiConn) copyStdin(body requestBody) error {
	if body.stream == nil { // in memory (up to bodyMemory): through the same pooled records
		body.stream, body.length = bytes.NewReader(body.mem), int64(len(body.mem))
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := (*bp)[:cap(*bp)]
	left := body.length
	for left > 0 {
		n, err := io.ReadFull(body.stream, buf[fcgiHeaderLen:fcgiHeaderLen+int(min(left, fcgiChunk))])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return clientError{fmt.Errorf("reading request body: %w", err)}
		}
		appendRecordHeader(buf[:0], fcgiStdin, n)
		if err := c.write(buf[:fcgiHeaderLen+n]); err != nil {
			return err
		}
		left -= int64(n)
	}
	return c.write(appendRecordHeader(buf[:0], fcgiStdin, 0))
}

// applyCGIHeaders sets the status and PHP's headers on resp and returns PHP's Content-Length, or
// -1. Hop-by-hop fields, X-Powered-By (Laravel's server block hides it) and X-Request-Id (ours
// is already set) are left out.
func applyCGIHeaders(resp *fasthttp.Response, status int, fields []cgiField) int {
	resp.SetStatusCode(status)
	resp.Header.SetNoDefaultContentType(true)
	cl := -1
	for _, f := range fields {
		switch {
		case asciiEqualFold(f.name, "Content-Length"):
			if n, err := strconv.Atoi(string(f.value)); err == nil && n >= 0 {
				cl = n
			}
			continue
		case asciiEqualFold(f.name, "Content-Type"):
			resp.Header.SetContentTypeBytes(f.value)
			continue
		case asciiEqualFold(f.name, "X-Powered-By"), asciiEqualFold(f.name, "X-Request-Id"):
			continue
		}
		hop := false
		for _, h := range hopByHop {
			if asciiEqualFold(f.name, h) {
				hop = true
				break
			}
		}
		if !hop {
			resp.Header.AddBytesKV(f.name, f.value)
		}
	}
	return cl
}

// fcgiBody streams the rest of a response from php-fpm to the client. fasthttp calls WriteTo
// (or Read) while writing the response and Close once done, which is when the connection goes
// back to the pool, or is closed when the body did not end cleanly.
type fcgiBody struct {
	c      *fcgiConn
	pre    *[]byte // pooled backing of buf
	buf    []byte  // bytes gathered before streaming began, not yet sent
	stdin  chan error
	x      *exchange
	status int
	sent   int64
	done   bool // END_REQUEST seen and the connection handed back
	err    error
}

// SupportsBodyWriteTo lets fasthttp use WriteTo, which writes whole gathered chunks.
func (b *fcgiBody) SupportsBodyWriteTo() bool { return true }

// WriteTo copies the body to w. For a chunked response fasthttp flushes every Write, so a write
// happens whenever php-fpm has nothing more ready: PHP's flush() reaches the client at once
// (streamed responses, SSE) while a fast download goes out in fcgiChunk pieces.
func (b *fcgiBody) WriteTo(w io.Writer) (int64, error) {
	start := b.sent
	for {
		if len(b.buf) > 0 {
			n, err := w.Write(b.buf)
			b.sent += int64(n)
			if err != nil {
				b.err = err
				return b.sent - start, err
			}
			b.buf = b.buf[:0]
		}
		if b.done {
			return b.sent - start, nil
		}
		if err := b.gather(); err != nil {
			return b.sent - start, err
		}
	}
}

// gather reads at least one piece of body into buf, and more while it is already buffered.
func (b *fcgiBody) gather() error {
	for {
		chunk, err := b.c.r.next(fcgiChunk - len(b.buf))
		if errors.Is(err, io.EOF) {
			err := b.c.finish(b.stdin)
			b.stdin = nil // consumed by finish
			if err != nil {
				b.fail(err)
				return err
			}
			b.done = true
			return nil
		}
		if err != nil {
			b.fail(err)
			return err
		}
		b.buf = append(b.buf, chunk...)
		if len(b.buf) >= fcgiChunk || !b.c.r.ready() {
			return nil
		}
	}
}

// Read is the io.Reader fasthttp requires; WriteTo is the path it takes.
func (b *fcgiBody) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if b.err != nil {
			return 0, b.err
		}
		if err := b.gather(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[:copy(b.buf, b.buf[n:])]
	b.sent += int64(n)
	return n, nil
}

func (b *fcgiBody) fail(err error) {
	b.err = err
	b.c.u.log.Error().Err(err).Str("upstream", b.c.u.name).Str("request_id", b.x.reqID).
		Str("kind", failureKind(err)).Msg("upstream failed while streaming the response")
	b.x.h.observer.Load().ObserveUpstreamError(b.c.u.name, failureKind(err))
}

// Close ends the exchange: an unfinished body (client gone, HEAD, error) closes the upstream
// connection, since the rest of the response would still be on it.
func (b *fcgiBody) Close() error {
	if !b.done {
		b.done = true
		b.c.discard()
		if b.stdin != nil {
			<-b.stdin
		}
	}
	*b.pre = b.buf[:0]
	chunkPool.Put(b.pre)
	b.x.finish(b.status, b.sent)
	return nil
}

// ready dials php-fpm once (for /readyz).
func (u *fcgiUpstream) ready(ctx context.Context) error {
	d := net.Dialer{Timeout: u.cfg.ConnectTimeout}
	c, err := d.DialContext(ctx, u.network, u.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// logLimiter lets through a burst of lines per second and counts the rest.
type logLimiter struct {
	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

const logBurst = 20

func (l *logLimiter) allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= logBurst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}
