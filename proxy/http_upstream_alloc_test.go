//go:build !race

package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// typicalRequest is what a browser sends for a page, parsed as the server parses it.
func typicalRequest(t *testing.T, ctx *fasthttp.RequestCtx) {
	t.Helper()
	var req fasthttp.Request
	raw := "GET /orders?page=2 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: Mozilla/5.0\r\n" +
		"Accept: text/html\r\nAccept-Encoding: gzip, br\r\nAccept-Language: en\r\n" +
		"Cookie: laravel_session=abc; XSRF-TOKEN=def\r\nReferer: https://shop.test/\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 50000}, nil)
}

// TestUpstreamHeaderWorkAllocs: what the HTTP upstream path does to the headers of an ordinary
// request allocates nothing (the strip passes, X-Forwarded-*) or only the id string the access
// log keeps (a new request id): they run on every proxied request. Before, a Del per listed
// name, strings for the peer and local addresses and a closure per header pass allocated on
// every request.
func TestUpstreamHeaderWorkAllocs(t *testing.T) {
	var ctx fasthttp.RequestCtx
	typicalRequest(t, &ctx)
	var up fasthttp.RequestHeader
	ctx.Request.Header.CopyTo(&up)
	client := Client{Peer: peerAddr(&ctx), Addr: peerAddr(&ctx)}
	var resp fasthttp.ResponseHeader
	resp.DisableNormalizing()
	resp.SetContentType("text/html; charset=UTF-8")
	resp.SetContentLength(42)
	resp.Set("Cache-Control", "no-cache, private")
	resp.Set("Set-Cookie", "laravel_session=abc; path=/; httponly")
	resp.Set("date", "Fri, 04 Dec 2026 17:00:00 GMT")
	for _, c := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"stripRequestHeaders", 0, func() { stripRequestHeaders(&up) }},
		{"stripHopByHop", 0, func() { stripHopByHop(&resp) }},
		{"setForwarded", 0, func() { setForwarded(&ctx, client, &up) }},
		{"requestID (new id)", 1, func() { ctx.Request.Header.Del("X-Request-Id"); requestID(&ctx) }},
	} {
		if n := testing.AllocsPerRun(200, c.f); n > c.max {
			t.Errorf("%s: %.1f allocations, want at most %.0f", c.name, n, c.max)
		}
	}
	if string(up.Peek("X-Forwarded-For")) != "203.0.113.7" || string(up.Peek("X-Forwarded-Host")) != "shop.test" ||
		string(up.Peek("X-Real-Ip")) != "203.0.113.7" || up.Peek("Cookie") == nil {
		t.Errorf("upstream headers after the passes: %s", up.Header())
	}
}

// TestMethodNameAllocs: the method kept for the access log costs no copy for the usual ones.
func TestMethodNameAllocs(t *testing.T) {
	for _, m := range []string{"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		b := []byte(m)
		if n := testing.AllocsPerRun(100, func() {
			if methodName(b) != m {
				t.Fatal(m)
			}
		}); n != 0 {
			t.Errorf("%s: %.0f allocations", m, n)
		}
	}
	if methodName([]byte("PROPFIND")) != "PROPFIND" {
		t.Error("other methods kept as sent")
	}
}

// TestServeHTTPUpstreamAllocs: a small page through an HTTP upstream, as BenchmarkServeHTTPUpstream
// runs it, allocates at most 9 times (a memory profile: fasthttp's client for the response
// stream 4, the exchange, the request id string, the path checks). Before the header passes,
// X-Forwarded-*, the request id, the method, the in-memory request body and the small response
// read whole stopped allocating it was 18.
func TestServeHTTPUpstreamAllocs(t *testing.T) {
	page := upstreamPage(t)
	var ctx fasthttp.RequestCtx
	n := testing.AllocsPerRun(200, func() {
		if st := page(&ctx); st != 200 {
			t.Fatal(st)
		}
	})
	if n > 9 {
		t.Errorf("%.1f allocations per proxied request, want at most 9", n)
	}
}
