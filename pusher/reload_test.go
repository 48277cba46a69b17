package pusher

import (
	"strings"
	"testing"
)

// Reload applies a new app list without dropping the sockets of apps that stay: a removed app's
// sockets are told it is gone (4001: do not reconnect), a kept app's sockets carry on, and a new
// app accepts connections at once.
func TestReloadRemovesAndAddsApps(t *testing.T) {
	cfg := oneApp()
	cfg.Apps = append(cfg.Apps, AppConfig{ID: "app2", Key: "key2", Secret: "secret2"})
	ts := startServer(t, cfg)
	kept, removed := ts.connect(t, "key1"), ts.connect(t, "key2")
	kept.subscribe("room", "")
	removed.subscribe("room", "")

	next := oneApp()
	next.Apps = append(next.Apps, AppConfig{ID: "app3", Key: "key3", Secret: "secret3"})
	if err := ts.srv.Reload(next); err != nil {
		t.Fatal(err)
	}
	removed.expectClose(4001)
	kept.send(`{"event":"pusher:ping","data":{}}`)
	if f := kept.read(); f.Event != "pusher:pong" {
		t.Fatalf("kept app's socket after reload: %+v", f)
	}
	ts.connect(t, "key3")
	c := &client{t: t, c: ts.dialRaw(t, "/app/key2?protocol=7", nil)}
	if code := errorCode(t, c.read()); code != float64(4001) {
		t.Fatalf("removed app's key after reload: code %v, want 4001", code)
	}
}

// A path prefix is where clients and the broadcaster connect: changing it live would strand
// both, so Reload refuses it, says why, and keeps serving with the running configuration.
func TestReloadRefusesPathPrefixChange(t *testing.T) {
	ts := startServer(t, oneApp())
	c := ts.connect(t, "key1")
	next := oneApp()
	next.PathPrefix = "/ws"
	err := ts.srv.Reload(next)
	if err == nil || !strings.Contains(err.Error(), "path_prefix") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Reload with a new path prefix: %v, want a refusal naming path_prefix and the restart", err)
	}
	c.send(`{"event":"pusher:ping","data":{}}`)
	if f := c.read(); f.Event != "pusher:pong" {
		t.Fatalf("after the refused reload: %+v", f)
	}
	ts.connect(t, "key1")
}
