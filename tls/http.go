package tls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sys/unix"
)

// HTTPHandler serves the :80 listener: ACME http-01 challenges (auto mode), then either a 308
// redirect to https:// (method and body preserved, path and query kept) or, with HTTPRedirect
// off, the fallback handler.
func (m *Manager) HTTPHandler(fallback fasthttp.RequestHandler) fasthttp.RequestHandler {
	var challenge fasthttp.RequestHandler
	if m.acme != nil {
		// A nil fallback makes autocert answer only challenges; everything else is ours below.
		challenge = fasthttpadaptor.NewFastHTTPHandler(m.acme.HTTPHandler(nil))
	}
	_, httpsPort, _ := net.SplitHostPort(m.cfg.HTTPSAddr)
	return func(ctx *fasthttp.RequestCtx) {
		if challenge != nil && len(ctx.Path()) > len(acmePrefix) && string(ctx.Path()[:len(acmePrefix)]) == acmePrefix {
			challenge(ctx)
			return
		}
		if !m.cfg.HTTPRedirect {
			fallback(ctx)
			return
		}
		host := string(ctx.Host())
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1] // IPv6 literal without a port
		}
		if host == "" {
			ctx.Error("a Host header is needed to redirect to https", fasthttp.StatusBadRequest)
			return
		}
		var target string
		switch {
		case httpsPort != "" && httpsPort != "443":
			target = "https://" + net.JoinHostPort(host, httpsPort)
		case strings.Contains(host, ":"): // an IPv6 literal keeps its brackets (RFC 3986 §3.2.2)
			target = "https://[" + host + "]"
		default:
			target = "https://" + host
		}
		target += string(ctx.RequestURI())
		ctx.Response.Header.Set("Location", target)
		ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	}
}

const acmePrefix = "/.well-known/acme-challenge/"

// WrapHSTS adds Strict-Transport-Security to every TLS response when configured.
func (m *Manager) WrapHSTS(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if m.cfg.HSTS <= 0 {
		return h
	}
	value := "max-age=" + strconv.Itoa(int(m.cfg.HSTS.Seconds()))
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Strict-Transport-Security", value)
		h(ctx)
	}
}

// Listen binds a TCP listener with SO_REUSEPORT, so a new frontdoor process can bind the same
// address while the old one drains (binary upgrades). When a port below 1024 is refused, the
// error names the port and the two usual fixes.
func Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	return ln, nil
}

func listenError(addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if errors.Is(err, syscall.EACCES) && p > 0 && p < 1024 {
		return fmt.Errorf("listen on %s: port %d needs privileges: run `sudo setcap cap_net_bind_service=+ep $(command -v frontdoor)`, "+
			"or use the systemd unit (AmbientCapabilities=CAP_NET_BIND_SERVICE), or pick a port ≥ 1024 with --https-addr/--http-addr: %w", addr, p, err)
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: the address is in use by another program (is Nginx or Reverb still running?): %w", addr, err)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}
