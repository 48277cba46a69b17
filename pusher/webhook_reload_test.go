package pusher

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A reload replaces webhook targets (#16 item 2): an app removed and added back signs its
// webhooks with its new secret, not the one it had before, and a removed app's target
// goroutine ends with the reload instead of living until shutdown.
func TestWebhookTargetsFollowReload(t *testing.T) {
	signedWith := make(chan string, 16) // per request: the secret its signature verifies with
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		which := "neither secret"
		for _, secret := range []string{"secret1", "secret-new"} {
			if req.Header.Get("X-Pusher-Signature") == hmacHex(secret, string(body)) {
				which = secret
			}
		}
		signedWith <- which
	}))
	t.Cleanup(hook.Close)
	next := func() string {
		t.Helper()
		select {
		case s := <-signedWith:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no webhook request within 10 s")
			return ""
		}
	}
	ts := startServer(t, withWebhook(hook.URL, time.Second))
	ts.srv.emitWebhook(ts.srv.appByID("app1"), webhookEvent{Name: "channel_occupied", Channel: "before"})
	if got := next(); got != "secret1" {
		t.Fatalf("before the reloads: signed with %s, want secret1", got)
	}
	ts.srv.webhooks.mu.Lock()
	old := ts.srv.webhooks.targets["app1\x00"+hook.URL]
	ts.srv.webhooks.mu.Unlock()
	if old == nil {
		t.Fatal("no target for app1's webhook after a delivery")
	}

	// app1 removed: its target's goroutine ends.
	if err := ts.srv.Reload(Config{Apps: []AppConfig{{ID: "app2", Key: "key2", Secret: "secret2"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed app's webhook target goroutine is still running 10 s after the reload")
	}

	// app1 added back with a new secret: its webhooks are signed with it.
	back := withWebhook(hook.URL, time.Second)
	back.Apps[0].Secret = "secret-new"
	if err := ts.srv.Reload(back); err != nil {
		t.Fatal(err)
	}
	ts.srv.emitWebhook(ts.srv.appByID("app1"), webhookEvent{Name: "channel_occupied", Channel: "after"})
	if got := next(); got != "secret-new" {
		t.Fatalf("app removed and added back with a new secret: webhook signed with %s, want secret-new", got)
	}
}
