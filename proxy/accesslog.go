package proxy

import (
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// Access log fields are capped: they come from the client.
const (
	logTargetMax    = 1024
	logUserAgentMax = 256
	logRefererMax   = 512
)

// noteAccess keeps what the access log line needs of the request, before the handler (or
// PHP's answer) can change it: the request target as sent, not the cleaned path (so /../.env
// shows as the client asked), its query with secrets redacted, User-Agent and Referer.
func (x *exchange) noteAccess(ctx *fasthttp.RequestCtx) {
	x.remote = ctx.RemoteIP().String()
	if x.client.Addr.IsValid() {
		x.remote = x.client.Addr.String()
	}
	target, query, _ := strings.Cut(string(ctx.Request.Header.RequestURI()), "?")
	x.target = capString(target, logTargetMax)
	x.query = capString(redactQuery(query), logTargetMax)
	x.userAgent = capString(string(ctx.Request.Header.UserAgent()), logUserAgentMax)
	ref := string(ctx.Request.Header.Referer())
	if base, q, ok := strings.Cut(ref, "?"); ok {
		ref = base + "?" + redactQuery(q)
	}
	x.referer = capString(ref, logRefererMax)
}

func capString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// redactQuery replaces the values of parameters that carry secrets (signatures, tokens,
// passwords, keys: Pusher's auth_signature, Laravel's signed URLs, password-reset tokens) with
// [redacted], keeping the rest of the query as sent.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	var b strings.Builder
	for i, pair := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(pair, "=")
		if hasValue && secretParam(name) {
			b.WriteString(name)
			b.WriteString("=[redacted]")
			continue
		}
		b.WriteString(pair)
	}
	return b.String()
}

// secretParam reports a query parameter name whose value must not reach a log.
func secretParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	if name == "sig" {
		return true
	}
	for _, s := range []string{"signature", "token", "password", "passwd", "secret", "key"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
