package doctor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// writeEnv writes a .env for a server on addr (plain HTTP) with the given credentials.
func writeEnv(t *testing.T, addr, id, key, secret, extra string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	env := "APP_ENV=local\nAPP_URL=http://localhost\nBROADCAST_CONNECTION=reverb\n" +
		"REVERB_APP_ID=" + id + "\nREVERB_APP_KEY=" + key + "\nREVERB_APP_SECRET=" + secret + "\n" +
		"REVERB_HOST=" + host + "\nREVERB_PORT=" + port + "\nREVERB_SCHEME=http\n" +
		"VITE_REVERB_APP_KEY=\"${REVERB_APP_KEY}\"\nVITE_REVERB_HOST=\"${REVERB_HOST}\"\nVITE_REVERB_PORT=\"${REVERB_PORT}\"\nVITE_REVERB_SCHEME=\"${REVERB_SCHEME}\"\n" + extra
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveLoopback runs a fasthttp server with h on a free loopback port until the test ends.
func serveLoopback(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h, KeepHijackedConns: true, ReadBufferSize: 4096, StreamRequestBody: true}
	done := make(chan struct{})
	go func() { _ = s.Serve(ln); close(done) }()
	t.Cleanup(func() {
		_ = s.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// TestLiveNotRouted: a server that answers /app and /apps with the application's HTML (the
// "not routed to the socket server" case, laravel-config.md §5 #8).
func TestLiveNotRouted(t *testing.T) {
	addr := serveLoopback(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/html; charset=UTF-8")
		ctx.SetBodyString("<!DOCTYPE html><title>Not Found</title>")
	})
	env := writeEnv(t, addr, "123456", "q8v2mfk3w9xh4tlp0zna", "7hd0s2kq9vzm4xwe1rtb", "")
	rep, err := Check(context.Background(), Options{EnvFile: env, Timeout: 5 * time.Second, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"ws-handshake-failed", "api-not-routed"} {
		if f, ok := findingWith(rep, code); !ok || f.Severity != Error {
			t.Fatalf("want error %s:%s", code, dump(rep))
		}
	}
}
