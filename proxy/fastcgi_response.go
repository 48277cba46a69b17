package proxy

import (
	"errors"
	"io"
	"strconv"

	"github.com/valyala/fasthttp"
)

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
		Str("kind", string(failureKind(err))).Msg("upstream failed while streaming the response")
	b.x.h.observer.Load().ObserveUpstreamError(b.c.u.name, string(failureKind(err)))
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
