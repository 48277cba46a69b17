package doctor

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher"
	redisbroker "github.com/frontdoorhq/frontdoor/pusher/redis"
)

// pusherServer runs frontdoor's real Pusher server (package pusher) on loopback with one app,
// routed the way cmd/frontdoor routes it: /app/ to the WebSocket handler, /apps/ to the API.
func pusherServer(t *testing.T, app pusher.AppConfig) string {
	t.Helper()
	return pusherServerWith(t, pusher.Config{Apps: []pusher.AppConfig{app}})
}

func pusherServerWith(t *testing.T, cfg pusher.Config) string {
	t.Helper()
	srv, err := pusher.NewServer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveLoopback(t, func(ctx *fasthttp.RequestCtx) {
		switch p := ctx.Path(); {
		case bytes.HasPrefix(p, []byte("/apps/")):
			srv.HandleAPI(ctx)
		case bytes.HasPrefix(p, []byte("/app/")):
			srv.HandleWebSocket(ctx)
		default:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return addr
}

// TestLiveAgainstPusherServer: the .env's credentials against a server holding the right or the
// wrong ones. Right ones pass both live checks; a wrong key is 4001 on the socket, a wrong secret
// 401 on the API, a wrong id 404, a refused origin 4009.
func TestLiveAgainstPusherServer(t *testing.T) {
	const id, key, secret = "123456", "q8v2mfk3w9xh4tlp0zna", "7hd0s2kq9vzm4xwe1rtb"
	tests := []struct {
		name                 string
		app                  pusher.AppConfig
		envID, envKey, envSe string
		wantErrors           []string
		wantInfo             []string
	}{
		{name: "matching credentials", app: pusher.AppConfig{ID: id, Key: key, Secret: secret},
			envID: id, envKey: key, envSe: secret, wantInfo: []string{"ws-ok", "api-ok"}},
		{name: "wrong secret", app: pusher.AppConfig{ID: id, Key: key, Secret: "another-secret-0000000"},
			envID: id, envKey: key, envSe: secret, wantErrors: []string{"api-signature-rejected"}, wantInfo: []string{"ws-ok"}},
		{name: "wrong key", app: pusher.AppConfig{ID: id, Key: "another-key-00000000", Secret: secret},
			envID: id, envKey: key, envSe: secret, wantErrors: []string{"ws-app-key-unknown", "api-signature-rejected"}},
		{name: "wrong id", app: pusher.AppConfig{ID: "654321", Key: key, Secret: secret},
			envID: id, envKey: key, envSe: secret, wantErrors: []string{"api-app-unknown"}, wantInfo: []string{"ws-ok"}},
		{name: "origin refused", app: pusher.AppConfig{ID: id, Key: key, Secret: secret, AllowedOrigins: []string{"admin.example.com"}},
			envID: id, envKey: key, envSe: secret, wantErrors: []string{"ws-origin-refused"}, wantInfo: []string{"api-ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := pusherServer(t, tt.app)
			env := writeEnv(t, addr, tt.envID, tt.envKey, tt.envSe, "")
			var out bytes.Buffer
			code := Run(context.Background(), Options{EnvFile: env, Timeout: 5 * time.Second, lookupEnv: noEnv}, &out)
			rep, err := Check(context.Background(), Options{EnvFile: env, Timeout: 5 * time.Second, lookupEnv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.wantErrors {
				if f, ok := findingWith(rep, c); !ok || f.Severity != Error {
					t.Errorf("want error %s:%s", c, dump(rep))
				}
			}
			for _, c := range tt.wantInfo {
				if f, ok := findingWith(rep, c); !ok || f.Severity != Info {
					t.Errorf("want info %s:%s", c, dump(rep))
				}
			}
			wantCode := 0
			if len(tt.wantErrors) > 0 {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d:\n%s", code, wantCode, out.String())
			}
			if strings.Contains(out.String(), secret) {
				t.Errorf("output contains the secret:\n%s", out.String())
			}
		})
	}
}

// TestLivePartialAnswer: a node that cannot reach its cluster's Redis answers the API from its
// own state and says so; doctor warns that the cluster is not being asked.
func TestLivePartialAnswer(t *testing.T) {
	const id, key, secret = "123456", "q8v2mfk3w9xh4tlp0zna", "7hd0s2kq9vzm4xwe1rtb"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "redis://" + ln.Addr().String() + "/0" // a port nobody listens on once closed
	ln.Close()
	b, err := redisbroker.New(redisbroker.Config{URL: down}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := pusherServerWith(t, pusher.Config{Apps: []pusher.AppConfig{{ID: id, Key: key, Secret: secret}}, Broker: b})
	env := writeEnv(t, addr, id, key, secret, "")
	rep, err := Check(context.Background(), Options{EnvFile: env, Timeout: 5 * time.Second, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := findingWith(rep, "api-partial"); !ok || f.Severity != Warning || !strings.Contains(f.Message, "cluster-unavailable") {
		t.Fatalf("want warning api-partial:%s", dump(rep))
	}
	if _, ok := findingWith(rep, "api-ok"); !ok {
		t.Fatalf("want api-ok:%s", dump(rep))
	}
}
