package proxy

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// BenchmarkServeStatic measures the handler alone on a static file (no network): path checks,
// validators and opening the file.
func BenchmarkServeStatic(b *testing.B) {
	h, err := New(Config{Root: "testdata/app/public", Upstreams: []string{"http://127.0.0.1:1"}}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/build/assets/app-abc123.js")
		h.ServeHTTP(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatal(ctx.Response.StatusCode())
		}
	}
}

// BenchmarkServeFastCGI measures the handler on a small PHP page through real php-fpm over the
// unix socket (no network in front): params, one kept connection, header parsing.
func BenchmarkServeFastCGI(b *testing.B) {
	fpm := startPHPFPM(b, 2)
	h, err := New(Config{Root: "testdata/app/public", Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/cookies")
		ctx.Request.Header.Set("Accept", "text/html")
		ctx.Request.Header.Set("User-Agent", "bench")
		h.ServeHTTP(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatal(ctx.Response.StatusCode())
		}
	}
}

// upstreamPage is a Handler in front of startBenchUpstream and a function that sends it one
// request for a small page, reusing ctx as the server does, and reports its status; the body
// is read (the stream, as the server would) and must not be empty.
func upstreamPage(tb testing.TB) func(ctx *fasthttp.RequestCtx) int {
	tb.Helper()
	up := startBenchUpstream(tb)
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return func(ctx *fasthttp.RequestCtx) int {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/page")
		ctx.Request.Header.SetHost("app.test")
		ctx.Request.Header.Set("Accept", "text/html")
		h.ServeHTTP(ctx)
		if len(ctx.Response.Body()) == 0 {
			return 0
		}
		return ctx.Response.StatusCode()
	}
}

// BenchmarkServeHTTPUpstream measures the handler on a small page from an HTTP upstream (a
// fasthttp server in this process) with no network in front.
func BenchmarkServeHTTPUpstream(b *testing.B) {
	page := upstreamPage(b)
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		if st := page(&ctx); st != 200 {
			b.Fatal(st)
		}
	}
}
