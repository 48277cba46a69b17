package proxy

import (
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// hostName returns the name a Host header (or absolute-form target) names: the port and an
// IPv6 literal's brackets removed, lower case, without a trailing dot (app.example.com. is the
// same name, RFC 1034 §3.1).
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.ToLower(host)
}

// matchHost returns the configured name ctx's Host is, or "" when it is none of them.
func (h *Handler) matchHost(ctx *fasthttp.RequestCtx) string {
	name := hostName(string(ctx.Host()))
	for _, n := range h.hosts {
		if n == name {
			return n
		}
	}
	return ""
}

// isHost reports one of the configured names (as hostName gives them).
func (h *Handler) isHost(name string) bool {
	for _, n := range h.hosts {
		if n == name {
			return true
		}
	}
	return false
}

// serverName is SERVER_NAME for PHP: the configured name the request matched, else the first
// configured one; the client's own Host only when no names are configured (a development
// server on plain HTTP). PHP frameworks build absolute URLs from it.
func (h *Handler) serverName(ctx *fasthttp.RequestCtx) string {
	if len(h.hosts) == 0 {
		return hostName(string(ctx.Host()))
	}
	if n := h.matchHost(ctx); n != "" {
		return n
	}
	return h.hosts[0]
}

// RefuseHost answers 421 Misdirected Request (RFC 9110 §15.5.20) and reports true when names
// are configured (Config.Hosts), AllowAnyHost is off and ctx's Host is none of them: a request
// for another name must not reach PHP (password-reset links built from the Host) or the Pusher
// endpoints. cmd/frontdoor's router calls it first on the public listeners.
func (h *Handler) RefuseHost(ctx *fasthttp.RequestCtx) bool {
	if len(h.hosts) == 0 || h.cfg.AllowAnyHost || h.matchHost(ctx) != "" {
		return false
	}
	if dropped, ok := h.refusals.Allow(); ok {
		ev := h.log.Info().Str("remote", ClientIP(ctx).String()).Int("host_bytes", len(ctx.Host()))
		if dropped > 0 {
			ev = ev.Uint64("suppressed", dropped)
		}
		ev.Msg("request for a host name this server does not serve refused (421)")
	}
	requestID(ctx)
	h.errorPage(ctx, fasthttp.StatusMisdirectedRequest, "Misdirected Request")
	ctx.SetConnectionClose()
	// Counted with the requests (status 421), on no upstream.
	h.observer.Load().ObserveRequest("-", fasthttp.StatusMisdirectedRequest, 0, int64(len(ctx.Response.Body())))
	return true
}
