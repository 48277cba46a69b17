package doctor

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// buildFrontdoor compiles ./cmd/frontdoor once per test binary.
func buildFrontdoor(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go tool", "not on PATH, so frontdoor cannot be built for this test", "install Go")
	}
	out := filepath.Join(t.TempDir(), "frontdoor")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/frontdoorhq/frontdoor/cmd/frontdoor")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/frontdoor: %v\n%s", err, b)
	}
	return out
}

// freePort is a loopback address for the frontdoor child, reserved until the test ends.
func freePort(t *testing.T) string { return testenv.ReserveAddr(t) }

// startFrontdoor runs `frontdoor serve` with one app on a loopback port and waits until it
// accepts connections.
func startFrontdoor(t *testing.T, bin, id, key, secret string) string {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(bin, "serve", "--listen", addr, "--app-id", id, "--app-key", key, "--app-secret", secret, "--admin", "off")
	cmd.Dir = t.TempDir() // no ./.env to pick up
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("frontdoor exited: %v\n%s", err, stderr.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("frontdoor did not listen on %s within 30s:\n%s", addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLiveAgainstFrontdoorBinary: doctor against the real `frontdoor serve`. The server holds
// the right key and secret: doctor passes with the same .env and reports the exact failures
// when the .env's key or secret differ from the server's.
func TestLiveAgainstFrontdoorBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the frontdoor binary")
	}
	const id, key, secret = "123456", "q8v2mfk3w9xh4tlp0zna", "7hd0s2kq9vzm4xwe1rtb"
	bin := buildFrontdoor(t)
	addr := startFrontdoor(t, bin, id, key, secret)

	tests := []struct {
		name       string
		key, sec   string
		wantErrors []string
		wantInfo   []string
	}{
		{"right key and secret", key, secret, nil, []string{"ws-ok", "api-ok"}},
		{"wrong secret", key, "not-the-server-secret-0", []string{"api-signature-rejected"}, []string{"ws-ok"}},
		{"wrong key", "not-the-server-key-00", secret, []string{"ws-app-key-unknown", "api-signature-rejected"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := writeEnv(t, addr, id, tt.key, tt.sec, "")
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
			if len(tt.wantErrors) == 0 && rep.Count(Error) != 0 {
				t.Errorf("errors with the server's own credentials:%s", dump(rep))
			}
		})
	}
}
