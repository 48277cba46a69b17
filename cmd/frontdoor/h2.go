package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
)

// HTTP/2 on the TLS listener (docs/configuration.md "HTTP/2"). fasthttp speaks HTTP/1.1 only, so
// connections whose TLS handshake chose h2 (fdtls.SplitH2) are served by net/http's HTTP/2
// server (the Go team's golang.org/x/net/http2, bundled into net/http; x/net deprecates its own
// http2.Server and ServeConn in favour of it), and each stream is handed to the very same
// fasthttp handler chain as an HTTP/1.1 request: one routing decision, one Host check, one proxy
// with its access log, request ids and metrics. serveFastHTTP is that bridge, the reverse of
// fasthttpadaptor.
//
// WebSockets stay on HTTP/1.1: browsers open wss:// on a connection of its own with ALPN
// http/1.1 unless the server offers RFC 8441 extended CONNECT, which frontdoor does not.

// h2 limits, chosen deliberately (docs/configuration.md "HTTP/2" has the table).
const (
	// h2MaxStreams is how many requests one connection may have in flight (Caddy 250, Nginx
	// 128). The server also runs at most this many handlers per connection and queues at most
	// four times as many more; a client that keeps opening and resetting streams past that
	// queue (the rapid-reset attack, CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM.
	h2MaxStreams = 250
	// h2StreamWindow is the upload a stream may have in flight unread: 1 MiB (x/net's default),
	// also the whole connection's, so one connection holds at most this much of client data.
	h2StreamWindow = 1 << 20
	h2ConnWindow   = 1 << 20
	// h2ReadTimeout bounds reading a request body (the HTTP/1.1 listener's ReadTimeout); the
	// proxy moves it while a body keeps arriving (--body-timeout), as it does over HTTP/1.1.
	h2ReadTimeout = 60 * time.Second
	// h2IdleTimeout closes a connection with no open stream (GOAWAY), as HTTP/1.1's IdleTimeout.
	h2IdleTimeout = 75 * time.Second
	// h2WriteByteTimeout closes a connection whose socket accepts no byte for this long.
	h2WriteByteTimeout = 60 * time.Second
	// h2HandshakeTimeout bounds the TLS handshake, now done before either server sees the
	// connection (it was bounded by the HTTP/1.1 ReadTimeout before).
	h2HandshakeTimeout = 60 * time.Second
)

// h2Server serves the connections that chose h2.
type h2Server struct {
	srv     *http.Server
	handler fasthttp.RequestHandler
	log     zerolog.Logger
}

func newH2Server(h fasthttp.RequestHandler, m *metrics, log zerolog.Logger) *h2Server {
	s := &h2Server{handler: h, log: log}
	errLogs := ratelog.New(1, 10*time.Second)
	var protos http.Protocols
	protos.SetHTTP2(true) // only: the split hands this server h2 connections alone
	s.srv = &http.Server{
		Protocols: &protos,
		// The header block's limit (SETTINGS_MAX_HEADER_LIST_SIZE: 16 KiB plus an allowance of
		// 32 bytes for each of 10 fields), the HTTP/1.1 listener's: beyond it, 431.
		MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout:    h2ReadTimeout,
		IdleTimeout:    h2IdleTimeout,
		ErrorLog:       stdlog.New(h2ErrorLog{log: log}, "", 0),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          h2MaxStreams,
			MaxReceiveBufferPerStream:     h2StreamWindow,
			MaxReceiveBufferPerConnection: h2ConnWindow,
			WriteByteTimeout:              h2WriteByteTimeout,
			// Every protocol error the server detects (resets past the queue, too many control
			// frames, malformed frames) is counted, and logged once per interval.
			CountError: func(kind string) {
				m.h2Errors.WithLabelValues(kind).Inc()
				if quiet, ok := errLogs.Allow(); ok {
					log.Info().Str("error", kind).Uint64("suppressed", quiet).Msg("http2: refused a client's protocol error")
				}
			},
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				m.h2Conns.Inc()
			case http.StateClosed, http.StateHijacked:
				m.h2Conns.Dec()
			}
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		Handler: http.HandlerFunc(s.serveFastHTTP),
	}
	return s
}

// h2ErrorLog sends the HTTP/2 server's own messages to the log: a handler's panic (recovered by
// net/http, the stream reset) is a bug and logged as an error; the rest (a client that closed
// mid-preface, a malformed frame) is per-client noise on a public port, counted by CountError,
// and goes to debug.
type h2ErrorLog struct{ log zerolog.Logger }

func (l h2ErrorLog) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	if strings.Contains(msg, "panic serving") {
		l.log.Error().Msg(msg)
	} else {
		l.log.Debug().Msg(msg)
	}
	return len(p), nil
}

type connKey struct{}

// Serve serves the h2 listener from fdtls.SplitH2 until Shutdown.
func (s *h2Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown drains: every connection gets GOAWAY (streams in flight finish, no new ones start),
// and those still open when ctx ends are closed.
func (s *h2Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// serveFastHTTP runs the fasthttp handler for one HTTP/2 stream: the request is copied into a
// RequestCtx (method, target, :authority as Host, headers, the body as a stream, as fasthttp
// hands over a large HTTP/1.1 body with StreamRequestBody), the handler runs, and its response
// is written back, a streamed body incrementally.
func (s *h2Server) serveFastHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	var ctx fasthttp.RequestCtx
	ctx.Init2(&h2StreamConn{Conn: c, rc: http.NewResponseController(w)}, fasthttpLogger{s.log}, true)
	req := &ctx.Request
	req.Header.SetMethod(r.Method)
	req.Header.SetRequestURI(r.RequestURI)
	// SERVER_PROTOCOL for PHP, as Nginx sets it; the proxy speaks HTTP/1.1 to an http upstream.
	req.Header.SetProtocol("HTTP/2.0")
	req.Header.SetHost(r.Host)
	for k, vs := range r.Header { // keys already canonical; cookie fields already joined (RFC 9113 §8.2.3)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		// -1 (no content-length): the proxy treats it as it treats a chunked HTTP/1.1 body.
		req.SetBodyStream(r.Body, int(r.ContentLength))
	}

	s.handler(&ctx)
	writeResponse(w, &ctx)
}

// writeResponse sends ctx.Response as fasthttp would over HTTP/1.1, less what HTTP/2 forbids.
func writeResponse(w http.ResponseWriter, ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	defer resp.CloseBodyStream() // closes a static file, ends a FastCGI stream
	if ctx.IsHead() {
		resp.SkipBody = true
	}
	status := resp.StatusCode()
	sendBody := !resp.SkipBody && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
	stream := resp.BodyStream()
	if stream == nil {
		if body := resp.Body(); sendBody || len(body) > 0 {
			resp.Header.SetContentLength(len(body))
		}
	}
	// The header as fasthttp writes it over HTTP/1.1 (Response.Header.AppendBytes): cookies,
	// Content-Length but not on 1xx/204, its default Content-Type only when there is a body, no
	// Date of the handler's (net/http adds the current one), less what HTTP/2 forbids.
	h := w.Header()
	rh := &resp.Header
	rh.SetNoDefaultContentType(true) // ContentType() now says only what the handler set
	for k, v := range rh.All() {
		key := http.CanonicalHeaderKey(string(k))
		switch key {
		case "Content-Type", "Date", "Trailer":
			continue
		// Connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2); a chunked
		// stream is HTTP/2's DATA frames.
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		case "Content-Length":
			if status < 200 || status == http.StatusNoContent {
				continue
			}
		}
		h[key] = append(h[key], string(v))
	}
	if ct := rh.ContentType(); len(ct) > 0 {
		h["Content-Type"] = []string{string(ct)}
	} else if rh.ContentLength() != 0 && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified {
		h["Content-Type"] = []string{fasthttpDefaultContentType}
	}
	w.WriteHeader(status)
	if !sendBody {
		return
	}
	if stream == nil {
		_, _ = w.Write(resp.Body())
		return
	}
	copyFlushing(w, stream, int64(resp.Header.ContentLength()))
}

// copyFlushing copies a streamed body of size bytes (-1: unknown), flushing each time the source
// pauses (a read that filled less than the buffer) before the end: Server-Sent Events and PHP's
// streamed responses reach the client as PHP writes them, while a file goes out in full frames
// and its end with the stream's last frame, without a flush (a write to the socket) of its own.
func copyFlushing(w http.ResponseWriter, src io.Reader, size int64) {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	rc := http.NewResponseController(w)
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client reset the stream or went away
			}
			sent += int64(n)
			if n < len(buf) && err == nil && (size < 0 || sent < size) {
				if rc.Flush() != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// fasthttpDefaultContentType is what fasthttp sends for a body without a Content-Type.
const fasthttpDefaultContentType = "text/plain; charset=utf-8"

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// h2StreamConn is what the handler chain sees as ctx.Conn() for a stream: the connection's
// addresses (REMOTE_ADDR, SERVER_PORT), its TLS state (ctx.IsTLS, so HTTPS=on for PHP), and
// deadlines that apply to this stream alone (the proxy's body timeout). The connection itself is
// the HTTP/2 server's: reading or writing it from a handler would corrupt the framing, so Read
// and Write fail and Close does nothing.
type h2StreamConn struct {
	net.Conn
	rc *http.ResponseController
}

var errStreamConn = errors.New("http2: a stream's connection is not readable or writable by a handler")

func (c *h2StreamConn) Read([]byte) (int, error)  { return 0, errStreamConn }
func (c *h2StreamConn) Write([]byte) (int, error) { return 0, errStreamConn }
func (c *h2StreamConn) Close() error              { return nil }

func (c *h2StreamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *h2StreamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
func (c *h2StreamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.rc.SetReadDeadline(t), c.rc.SetWriteDeadline(t))
}

// Handshake and ConnectionState make fasthttp's ctx.IsTLS and ctx.TLSConnectionState true to
// the connection: the handshake is done (h2 was chosen in it).
func (c *h2StreamConn) Handshake() error { return nil }

func (c *h2StreamConn) ConnectionState() tls.ConnectionState {
	if cs, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return cs.ConnectionState()
	}
	return tls.ConnectionState{}
}
