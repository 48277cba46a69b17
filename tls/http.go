package tls

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
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
		if challenge != nil && bytes.HasPrefix(ctx.Path(), acmePrefixBytes) {
			challenge(ctx)
			return
		}
		if !m.cfg.HTTPRedirect {
			if fallback == nil {
				ctx.NotFound()
				return
			}
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
		// The path as sent (not fasthttp's normalised one, which decodes %2F and resolves "..")
		// and the query, but not the raw request target: in absolute form (RFC 9112 §3.2.2,
		// "GET http://host/x") its scheme and host would end up inside the new URL.
		uri := ctx.URI()
		if path := uri.PathOriginal(); len(path) > 0 && path[0] == '/' {
			target += string(path)
		} else {
			target += "/"
		}
		if q := uri.QueryString(); len(q) > 0 {
			target += "?" + string(q)
		}
		ctx.Response.Header.Set("Location", target)
		ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	}
}

const acmePrefix = "/.well-known/acme-challenge/" // RFC 8555 §8.3

var acmePrefixBytes = []byte(acmePrefix)

// WrapHSTS adds Strict-Transport-Security (RFC 6797) to every TLS response when configured. It is
// set after the handler has run, because proxied responses replace the whole header set; a
// response that already carries its own policy (an app that sets includeSubDomains or preload)
// keeps it. The :80 listener never gets it: RFC 6797 §7.2 forbids it over plain HTTP.
func (m *Manager) WrapHSTS(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if m.cfg.HSTS <= 0 {
		return h
	}
	value := []byte("max-age=" + strconv.Itoa(int(m.cfg.HSTS.Seconds())))
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		if len(ctx.Response.Header.Peek(hstsHeader)) == 0 {
			ctx.Response.Header.SetBytesV(hstsHeader, value)
		}
	}
}

const hstsHeader = "Strict-Transport-Security"
