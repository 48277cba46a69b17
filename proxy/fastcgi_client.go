package proxy

import (
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

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
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

// The compiler checks that each upstream kind is a backend and each streamed body what fasthttp
// writes from.
var (
	_ backend       = (*fcgiUpstream)(nil)
	_ backend       = (*httpUpstream)(nil)
	_ io.ReadCloser = (*fcgiBody)(nil)
	_ io.WriterTo   = (*fcgiBody)(nil)
	_ io.ReadCloser = (*httpBody)(nil)
)

// fcgiUpstream is one php-fpm pool, over TCP or a unix socket.
type fcgiUpstream struct {
	name    string
	network string
	addr    string
	cfg     Config
	log     zerolog.Logger
	down    health
	stderrs *ratelog.Limiter // php stderr lines
	lane    *authLane        // /broadcasting/auth's share of the pool (authlane.go); nil when off

	pool
}

func newFCGIUpstream(raw string, cfg Config, log zerolog.Logger) *fcgiUpstream {
	network, addr, maxConns := fcgiAddr(raw)
	u := &fcgiUpstream{name: raw, network: network, addr: addr, cfg: cfg, log: log, stderrs: newLogLimiter()}
	u.pool.maxConns = maxConns
	u.lane = newAuthLane(u.size, cfg)
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

var (
	paramsPool = sync.Pool{New: func() any { return new([]byte) }}
	chunkPool  = sync.Pool{New: func() any { b := make([]byte, fcgiHeaderLen+fcgiChunk); return &b }}
)

// serve runs the front controller for ctx with the body the handler buffered (x.body). On
// success the response is set on ctx, either in full or as a body stream that keeps the
// connection until fasthttp has written it.
func (u *fcgiUpstream) serve(ctx *fasthttp.RequestCtx, x *exchange) error {
	if u.lane != nil && authPath(x.path) {
		if err := u.lane.acquire(); err != nil {
			return failed(kindAuthBusy, err)
		}
		start := time.Now()
		defer func() { u.lane.release(time.Since(start)) }()
	}
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
	pairs := appendParams((*pp)[:0], ctx, x.client, u.cfg.Root, real, u.cfg.FrontController, x.h.serverName(ctx), length)
	if x.h.sendfile != nil { // Symfony's BinaryFileResponse then answers with X-Sendfile
		pairs = appendPair(pairs, "HTTP_X_SENDFILE_TYPE", "X-Sendfile")
	}
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
			return failed(kindTimeout, err)
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				u.down.mark()
				return failed(kindTimeout, err)
			}
			u.down.mark()
			return failed(kindConnect, err)
		}
		c.reqID = x.reqID
		c.r.reset(c.br, c.onStderr)
		retry, err := u.roundTrip(ctx, x, c, out, *body, inline)
		if err == nil {
			return nil
		}
		// A kept connection can die between the liveness check and our write (a worker
		// exiting). Try once more on a fresh connection when nothing of the request is lost.
		if retry && c.reused && attempt == 0 {
			continue
		}
		return err
	}
}

// roundTrip runs one request on c. retry reports a failure before any response byte with the
// body still unread, so the request may go again. The error's kind is its cause's (kindOf).
func (u *fcgiUpstream) roundTrip(ctx *fasthttp.RequestCtx, x *exchange, c *fcgiConn, out []byte, body requestBody, inline bool) (retry bool, err error) {
	if err := c.write(out); err != nil {
		c.discard()
		return true, err
	}
	e := &fcgiExchange{c: c}
	if !inline {
		e.stdin = make(chan error, 1)
		go c.writeStdin(body, e.stdin)
	}
	hdr := cgiHeaders{limit: fcgiMaxHeader}
	rest, firstRead, err := e.headers(&hdr)
	if err != nil {
		err = e.fail(err)
		return firstRead && inline && failureKind(err) == kindProtocol, err
	}
	var fieldsArr [24]cgiField
	status, fields, err := hdr.parse(fieldsArr[:0])
	if err != nil {
		return false, e.fail(err)
	}
	cl := applyCGIHeaders(&ctx.Response, status, fields)
	return false, e.respond(ctx, x, rest, status, cl)
}

// fcgiExchange is one request on a connection, from its first response byte on.
type fcgiExchange struct {
	c     *fcgiConn
	stdin chan error // the STDIN writer's result; nil when the body went inline or was consumed
}

// fail closes the connection, which also stops the STDIN writer, and waits for it: the client's
// body stream belongs to fasthttp once the exchange returns. A failure of the client's body
// explains the upstream's and is the one returned.
func (e *fcgiExchange) fail(err error) error {
	e.c.discard()
	if e.stdin != nil {
		if werr := <-e.stdin; werr != nil {
			var ce clientError
			if errors.As(werr, &ce) || errors.Is(werr, errBodyTooLarge) {
				err = werr
			}
		}
		e.stdin = nil
	}
	return err
}

// headers reads the CGI header block into hdr and returns the bytes after it. firstRead
// reports a failure on the very first read, when nothing of the response has arrived.
func (e *fcgiExchange) headers(hdr *cgiHeaders) (rest []byte, firstRead bool, err error) {
	for got := false; ; got = true {
		chunk, err := e.c.r.next(fcgiChunk)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("fastcgi: response ended before its headers")
			}
			return nil, !got, err
		}
		e.c.settle()
		var done bool
		if rest, done, err = hdr.feed(chunk); err != nil || done {
			return rest, false, err
		}
	}
}

// respond sets the body: from memory when all of it has already arrived (most responses: the
// connection is back in the pool before fasthttp writes a byte), else as a stream that keeps
// the connection until fasthttp has written it. The pooled buffer goes back when this returns,
// unless the streamed body took it.
func (e *fcgiExchange) respond(ctx *fasthttp.RequestCtx, x *exchange, rest []byte, status, cl int) error {
	c := e.c
	pre := chunkPool.Get().(*[]byte)
	buf := append((*pre)[:0], rest...)
	streamed := false
	defer func() {
		if !streamed {
			*pre = buf[:0]
			chunkPool.Put(pre)
		}
	}()
	ended := false
	for len(buf) < fcgiInlineBody && c.r.ready() {
		chunk, err := c.r.next(fcgiChunk)
		if errors.Is(err, io.EOF) {
			ended = true
			break
		}
		if err != nil {
			return e.fail(err)
		}
		buf = append(buf, chunk...)
	}
	if ended || c.r.ended {
		err := c.finish(e.stdin)
		e.stdin = nil // consumed by finish
		if err != nil {
			return e.fail(err)
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
		return nil
	}
	if ctx.IsHead() { // no body goes out; the rest of PHP's output is not worth the wait
		_ = e.fail(nil)
		if cl >= 0 {
			ctx.Response.Header.SetContentLength(cl)
		}
		return nil
	}
	streamed = true
	x.deferred = true
	b := &fcgiBody{c: c, pre: pre, buf: buf, stdin: e.stdin, x: x, status: status}
	x.h.setBodyStream(ctx, b, cl)
	return nil
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

// ready dials php-fpm once (for /readyz).
func (u *fcgiUpstream) ready(ctx context.Context) error {
	d := net.Dialer{Timeout: u.cfg.ConnectTimeout}
	c, err := d.DialContext(ctx, u.network, u.addr)
	if err != nil {
		return err
	}
	return c.Close()
}
