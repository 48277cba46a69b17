package pusher

import (
	"net/url"
	"testing"
)

// Pusher answers both counts for a presence channel, and its server SDKs ask for exactly that
// pair (§10.2's example): subscription_count counts sockets, user_count distinct users.
func TestAPIPresenceChannelBothCounts(t *testing.T) {
	ts := startServer(t, oneApp())
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("presence-x", `{"user_id":"5"}`)
	b.subscribe("presence-x", `{"user_id":"5"}`) // the same user in a second tab
	code, out := ts.api(t, "GET", "/apps/app1/channels/presence-x", url.Values{"info": {"user_count,subscription_count"}}, "")
	if code != 200 || out["occupied"] != true || out["user_count"] != float64(1) || out["subscription_count"] != float64(2) {
		t.Fatalf("%d %v, want occupied, user_count 1, subscription_count 2", code, out)
	}
}
