//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// SIGTERM: clients are told to reconnect (4200) and closed, and the process exits 0.
func TestSIGTERMTellsClientsToReconnect(t *testing.T) {
	addr := freeAddr(t)
	p := startFrontdoor(t, t.TempDir(), "serve", "--listen", addr, "--admin", "off",
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p.waitLog(t, `"listening"`)
	c := dialPusher(t, addr, "key1")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sawError := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != 4200 {
				t.Fatalf("want close 4200, got %v", err)
			}
			break
		}
		if strings.Contains(string(msg), `"pusher:error"`) && strings.Contains(string(msg), `4200`) {
			sawError = true
		}
	}
	if !sawError {
		t.Error("no pusher:error 4200 frame before the close")
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// SIGHUP re-reads the YAML: a new app starts working and open sockets stay open.
func TestSIGHUPReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "frontdoor.yaml")
	write := func(apps string) {
		if err := os.WriteFile(cfg, []byte("apps:\n"+apps), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  - {id: one, key: key-one, secret: secret-one}\n")
	addr := freeAddr(t)
	p := startFrontdoor(t, dir, "serve", "--listen", addr, "--admin", "off", "--config", cfg)
	p.waitLog(t, `"listening"`)
	c := dialPusher(t, addr, "key-one")

	write("  - {id: one, key: key-one, secret: secret-one}\n  - {id: two, key: key-two, secret: secret-two}\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "configuration reloaded")
	ping(t, c) // the old socket survived the reload
	c2 := dialPusher(t, addr, "key-two")
	ping(t, c2)
}
