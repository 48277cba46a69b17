package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// The broadcaster over TLS with a private CA (issue #20): PHP verifies the certificate, so a
// signed request doctor got through without verifying it is no promise about publishes. doctor
// must never say api-ok there, and --ca-file is a real flag that makes the certificate checks pass
// while still saying PHP needs the CA too.
func TestLiveAPIOverUntrustedTLS(t *testing.T) {
	const id, key, secret = "123456", "q8v2mfk3w9xh4tlp0zna", "7hd0s2kq9vzm4xwe1rtb"
	ca := newTestCA(t)
	cert := ca.leaf(t, []string{"localhost"}, nil, time.Now().Add(-time.Hour), 90*24*time.Hour)
	srv, err := pusher.NewServer(pusher.Config{Apps: []pusher.AppConfig{{ID: id, Key: key, Secret: secret}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{KeepHijackedConns: true, Handler: func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Path(), []byte("/apps/")) {
			srv.HandleAPI(ctx)
		} else {
			srv.HandleWebSocket(ctx)
		}
	}}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	envPath := filepath.Join(t.TempDir(), ".env")
	env := "APP_ENV=local\nAPP_URL=https://localhost\nBROADCAST_CONNECTION=reverb\nREVERB_APP_ID=" + id + "\nREVERB_APP_KEY=" + key +
		"\nREVERB_APP_SECRET=" + secret + "\nREVERB_HOST=localhost\nREVERB_PORT=" + port + "\nREVERB_SCHEME=https\n"
	if err := os.WriteFile(envPath, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		insecure bool
		caFile   string
		want     string
		sev      Severity
	}{
		{"untrusted", false, "", "api-tls-untrusted", Error},
		{"untrusted, --insecure", true, "", "api-tls-untrusted", Error},
		{"--ca-file", false, ca.pemPath, "api-ok-private-ca", Warning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Check(context.Background(), Options{EnvFile: envPath, Insecure: tt.insecure, CAFile: tt.caFile, Timeout: 5 * time.Second, lookupEnv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := findingWith(rep, "api-ok"); ok {
				t.Errorf("api-ok although PHP would refuse the certificate: %s", f.Message)
			}
			f, ok := findingWith(rep, tt.want)
			if !ok || f.Severity != tt.sev {
				t.Fatalf("want %s %s:%s", tt.sev, tt.want, dump(rep))
			}
			if !strings.Contains(f.Fix, "client_options") || !strings.Contains(f.Fix, "127.0.0.1") {
				t.Errorf("the fix names neither working shape: %s", f.Fix)
			}
			if tt.caFile != "" {
				if _, ok := findingWith(rep, "tls-ok"); !ok {
					t.Errorf("--ca-file did not make the certificate trusted:%s", dump(rep))
				}
			}
			if u, ok := findingWith(rep, "tls-untrusted"); ok && strings.Contains(u.Fix, "--ca-file with your private CA") {
				t.Errorf("tls-untrusted still offers --ca-file as the fix for PHP: %s", u.Fix)
			}
		})
	}
}
