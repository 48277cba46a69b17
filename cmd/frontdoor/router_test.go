package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A Laravel route under /app or /apps reaches PHP; only a configured key or app id is the Pusher
// side's (issue #20: Filament's default panel at /app/dashboard got 426 from the WebSocket endpoint).
// The known keys follow a reload.
func TestLaravelRoutesUnderAppReachPHP(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "laravel "+r.URL.Path)
	}))
	defer upstream.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "frontdoor.yaml")
	write := func(apps string) {
		if err := os.WriteFile(cfg, []byte("apps:\n"+apps), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  - {id: app1, key: key1, secret: secret1}\n")
	addr := freeAddr(t)
	p := startFrontdoor(t, dir, "serve", "--listen", addr, "--admin", "off", "--config", cfg, "--env-file", "", "--upstream", upstream.URL)
	p.waitLog(t, `"listening"`)

	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, path := range []string{"/app/dashboard", "/app", "/apps", "/apps/dashboard", "/apps/dashboard/settings", "/app/key1x"} {
		if code, body := get(path); code != 200 || body != "laravel "+path {
			t.Errorf("GET %s = %d %q, want the upstream's answer", path, code, body)
		}
	}
	// The Pusher side keeps its own: the socket of a known key, the API of a known id.
	ping(t, dialPusher(t, addr, "key1"))
	if code, body := get("/apps/app1/channels"); code != 401 {
		t.Errorf("GET /apps/app1/channels unsigned = %d %q, want the API's 401", code, body)
	}
	if code, _ := get("/app/key1"); code != http.StatusUpgradeRequired {
		t.Errorf("GET /app/key1 without an upgrade = %d, want 426", code)
	}

	// A key added by a reload is the Pusher side's from then on.
	write("  - {id: app1, key: key1, secret: secret1}\n  - {id: app2, key: dashboard, secret: secret2}\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "configuration reloaded")
	if code, _ := get("/app/dashboard"); code != http.StatusUpgradeRequired {
		t.Errorf("GET /app/dashboard after the reload made it a key = %d, want 426", code)
	}
	if code, _ := get("/apps/app2/channels"); code != 401 {
		t.Errorf("GET /apps/app2/channels after the reload = %d, want the API's 401", code)
	}
}
