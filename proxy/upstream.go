package proxy

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

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
	name   string
	addr   string
	cfg    Config
	client *fasthttp.HostClient
	down   health
}

func newHTTPUpstream(raw string, cfg Config) *httpUpstream {
	u, _ := url.Parse(raw)
	return &httpUpstream{
		name: raw,
		addr: u.Host,
		cfg:  cfg,
		client: &fasthttp.HostClient{
			Addr: u.Host,
			Dial: (&fasthttp.TCPDialer{}).Dial,
			DialTimeout: func(addr string, _ time.Duration) (net.Conn, error) {
				return net.DialTimeout("tcp", addr, cfg.ConnectTimeout)
			},
			ReadTimeout:                   cfg.ReadTimeout,
			WriteTimeout:                  cfg.WriteTimeout,
			MaxIdleConnDuration:           30 * time.Second,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
			MaxResponseBodySize:           0,
		},
	}
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

// do forwards the request. It returns the failure kind for metrics: connect, timeout or protocol.
func (u *httpUpstream) serve(ctx *fasthttp.RequestCtx, _ *exchange) (string, error) {
	cfg := u.cfg
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	ctx.Request.Header.CopyTo(&req.Header)
	req.SetRequestURIBytes(ctx.Request.Header.RequestURI())
	if stream := ctx.RequestBodyStream(); stream != nil {
		req.SetBodyStream(stream, ctx.Request.Header.ContentLength())
	} else {
		req.SetBodyRaw(ctx.Request.Body())
	}
	stripHopByHop(&req.Header)
	setForwarded(ctx, &req.Header)
	req.SetHost(string(ctx.Host())) // Host preserved, as Nginx's proxy_set_header Host $host

	err := u.client.DoTimeout(req, resp, cfg.ReadTimeout+cfg.WriteTimeout)
	if err != nil {
		kind := "protocol"
		switch {
		case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
			kind = "timeout"
		case isConnectError(err):
			kind = "connect"
			u.down.mark()
		}
		return kind, err
	}
	stripHopByHop(&resp.Header)
	id := append([]byte(nil), ctx.Response.Header.Peek("X-Request-Id")...)
	resp.CopyTo(&ctx.Response)
	ctx.Response.Header.SetBytesV("X-Request-Id", id)
	return "", nil
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || strings.Contains(err.Error(), "connection refused")
}

func stripHopByHop(h interface {
	Peek(string) []byte
	Del(string)
}) {
	if c := string(h.Peek("Connection")); c != "" {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// setForwarded sets the X-Forwarded-* headers fresh (a client cannot spoof them), appending the
// client to X-Forwarded-For as Nginx's $proxy_add_x_forwarded_for does.
func setForwarded(ctx *fasthttp.RequestCtx, h *fasthttp.RequestHeader) {
	ip := ctx.RemoteIP().String()
	if prior := string(h.Peek("X-Forwarded-For")); prior != "" {
		h.Set("X-Forwarded-For", prior+", "+ip)
	} else {
		h.Set("X-Forwarded-For", ip)
	}
	proto, port := "http", "80"
	if ctx.IsTLS() {
		proto, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(ctx.LocalAddr().String()); err == nil {
		port = p
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", string(ctx.Host()))
	h.Set("X-Forwarded-Port", port)
	h.Set("X-Real-IP", ip)
	h.Del("Forwarded")
}
