package redis

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// TestCrossNodeDelivery: a publish on either node reaches every subscriber on both exactly once,
// socket_id exclusion holds for a socket on the other node, and client events cross nodes.
func TestCrossNodeDelivery(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	a, b := n1.connect(), n2.connect()
	a.subscribe("orders", "")
	b.subscribe("orders", "")

	n1.publish("orders", "created", `{"id":1}`, "")
	for _, c := range []*client{a, b} {
		if f := c.expect("created", "orders"); f.Data != `{"id":1}` {
			t.Fatalf("data %q", f.Data)
		}
	}
	// Excluding a's socket through the other node's API.
	n2.publish("orders", "updated", `{"id":1}`, a.socketID)
	b.expect("updated", "orders")
	a.expectNothing()
	b.expectNothing() // exactly once: no second copy behind the first

	// Client events on a private channel, from n2 to n1, never echoed to the sender.
	a.subscribe("private-chat", "")
	b.subscribe("private-chat", "")
	b.send(map[string]any{"event": "client-typing", "channel": "private-chat", "data": map[string]any{"who": "b"}})
	if f := a.expect("client-typing", "private-chat"); f.Data != `{"who":"b"}` {
		t.Fatalf("client event data %q", f.Data)
	}
	b.expectNothing()
	a.expectNothing()
}

// TestPresenceIsClusterWide: members listed from every node, member_added and member_removed
// once per user however many sockets and nodes the user has (§5.4).
func TestPresenceIsClusterWide(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	const ch = "presence-room"
	sync := barrier(n1, n2)

	u1 := n1.connect()
	if got := presenceIDs(t, u1.subscribe(ch, member("1"))); !equal(got, "1") {
		t.Fatalf("first member sees %v", got)
	}
	sync()
	u2 := n2.connect()
	if got := presenceIDs(t, u2.subscribe(ch, member("2"))); !equal(got, "1", "2") {
		t.Fatalf("second member on the other node sees %v", got)
	}
	if f := u1.expect("pusher_internal:member_added", ch); !jsonHas(f.Data, "user_id", "2") {
		t.Fatalf("member_added %q", f.Data)
	}
	u2.expectNothing()

	// User 1 opens a second tab on node 2: nobody is told, the member list is unchanged.
	u1b := n2.connect()
	if got := presenceIDs(t, u1b.subscribe(ch, member("1"))); !equal(got, "1", "2") {
		t.Fatalf("second socket of user 1 sees %v", got)
	}
	sync()
	u1.expectNothing()
	u2.expectNothing()

	// User 1 closes the first tab: still present through node 2, so no member_removed.
	u1.c.Close()
	eventually(t, 5*time.Second, "n1 saw the socket close", func() bool {
		_, out := n1.api("GET", "/apps/"+appID+"/connections", "")
		return out["connections"] == float64(3)
	})
	sync()
	u2.expectNothing()
	// Closes the second: now gone cluster-wide, announced once.
	u1b.c.Close()
	if f := u2.expect("pusher_internal:member_removed", ch); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_removed %q", f.Data)
	}
	sync()
	u2.expectNothing()
	st, users := n1.api("GET", "/apps/"+appID+"/channels/"+ch+"/users", "")
	if st != 200 || len(users["users"].([]any)) != 1 {
		t.Fatalf("users after leave: %d %v", st, users)
	}
}

// TestAPIAnswersAreClusterWide: channel lists and counts, users, connections, terminate and
// cache channels answer for the whole cluster from any node.
func TestAPIAnswersAreClusterWide(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	a, b, c := n1.connect(), n2.connect(), n2.connect()
	a.subscribe("orders", "")
	b.subscribe("orders", "")
	c.subscribe("stock", "")
	p1 := n1.connect()
	p1.subscribe("presence-team", member("7"))
	p2 := n2.connect()
	p2.subscribe("presence-team", member("8"))
	p1.expect("pusher_internal:member_added", "presence-team")

	st, out := n1.api("GET", "/apps/"+appID+"/channels?info=subscription_count", "")
	chans, _ := out["channels"].(map[string]any)
	if st != 200 || len(chans) != 3 || count(chans["orders"], "subscription_count") != 2 || count(chans["stock"], "subscription_count") != 1 {
		t.Fatalf("channels: %d %v", st, out)
	}
	st, out = n2.api("GET", "/apps/"+appID+"/channels/orders?info=subscription_count", "")
	if st != 200 || out["occupied"] != true || out["subscription_count"] != float64(2) {
		t.Fatalf("channel: %d %v", st, out)
	}
	st, out = n2.api("GET", "/apps/"+appID+"/channels/presence-team?info=user_count", "")
	if st != 200 || out["user_count"] != float64(2) {
		t.Fatalf("presence channel: %d %v", st, out)
	}
	st, out = n1.api("GET", "/apps/"+appID+"/connections", "")
	if st != 200 || out["connections"] != float64(5) {
		t.Fatalf("connections: %d %v", st, out)
	}

	// Cache channel: published on n1 with no subscriber anywhere, replayed to a subscriber on n2.
	n1.publish("cache-price", "price", `{"eur":10}`, "")
	d := n2.connect()
	d.subscribe("cache-price", "")
	if f := d.expect("price", "cache-price"); f.Data != `{"eur":10}` {
		t.Fatalf("cached event %q", f.Data)
	}
	// A node that starts after the publish gets it from Redis.
	n3 := startNode(t, r.url())
	e := n3.connect()
	e.subscribe("cache-price", "")
	e.expect("price", "cache-price")

	// terminate_connections on n1 closes user 8's socket on n2 (4009).
	st, out = n1.api("POST", "/apps/"+appID+"/users/8/terminate_connections", "{}")
	if st != 200 {
		t.Fatalf("terminate: %d %v", st, out)
	}
	expectClose(t, p2, 4009)
	p1.expect("pusher_internal:member_removed", "presence-team")
}

// TestMaxConnectionsClusterWide: the app's cap counts sockets on every node (as last reported
// by heartbeat).
func TestMaxConnectionsClusterWide(t *testing.T) {
	r := startRedis(t)
	cap2 := func(a *pusher.AppConfig) { a.MaxConnections = 2 }
	n1, n2 := startNode(t, r.url(), cap2), startNode(t, r.url(), cap2)
	n1.connect()
	n2.connect()
	eventually(t, 5*time.Second, "n1 knows n2's socket", func() bool { return n1.broker.RemoteConnections(appID) == 1 })
	if code := n1.connectRefused(); code != 4004 {
		t.Fatalf("third socket in the cluster: code %d, want 4004", code)
	}
}

// TestDeadNodeMembersRemoved: a node that stops heartbeating has its members removed, with
// member_removed sent to the other nodes' sockets.
func TestDeadNodeMembersRemoved(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	u1 := n1.connect()
	u1.subscribe("presence-ops", member("1"))
	u2 := n2.connect()
	u2.subscribe("presence-ops", member("2"))
	u1.expect("pusher_internal:member_added", "presence-ops")

	n2.crash()
	// Three heartbeats (1 s each in these tests) without a word; the read deadline leaves room.
	if f := u1.expect("pusher_internal:member_removed", "presence-ops"); !jsonHas(f.Data, "user_id", "2") {
		t.Fatalf("member_removed %q", f.Data)
	}
	st, out := n1.api("GET", "/apps/"+appID+"/channels/presence-ops/users", "")
	if st != 200 || len(out["users"].([]any)) != 1 {
		t.Fatalf("users after node death: %v", out)
	}
}

// TestRedisRestart: while Redis is down every node keeps serving its own sockets and reports
// not ready; after Redis comes back (empty: no persistence) delivery crosses nodes again and
// presence is rebuilt, with no socket dropped.
func TestRedisRestart(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	a, b := n1.connect(), n2.connect()
	a.subscribe("orders", "")
	b.subscribe("orders", "")
	p1, p2 := n1.connect(), n2.connect()
	p1.subscribe("presence-x", member("1"))
	barrier(n1, n2)()
	p2.subscribe("presence-x", member("2"))
	p1.expect("pusher_internal:member_added", "presence-x")

	r.stop()
	eventually(t, 10*time.Second, "n1 reports not ready", func() bool { return n1.srv.Ready() != nil })
	n1.publish("orders", "local", `{}`, "")
	a.expect("local", "orders")
	// Presence changes on one node still reach that node's sockets.
	p3 := n1.connect()
	if got := presenceIDs(t, p3.subscribe("presence-x", member("3"))); !contains(got, "3") {
		t.Fatalf("join during outage sees %v", got)
	}
	p1.expect("pusher_internal:member_added", "presence-x")

	r.start()
	eventually(t, 15*time.Second, "both nodes ready again", func() bool { return n1.srv.Ready() == nil && n2.srv.Ready() == nil })
	// Presence rebuilt: every node's members are back in Redis.
	eventually(t, 10*time.Second, "presence rebuilt", func() bool {
		_, out := n2.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
		users, _ := out["users"].([]any)
		return len(users) == 3
	})
	// User 3 joined during the outage; node 2's socket learns it after the rebuild.
	if f := p2.expect("pusher_internal:member_added", "presence-x"); !jsonHas(f.Data, "user_id", "3") {
		t.Fatalf("member_added after rebuild %q", f.Data)
	}
	// Once: the join's own message to the other nodes is not also queued through the outage.
	barrier(n1, n2)()
	p2.expectNothing()
	eventually(t, 10*time.Second, "delivery crosses nodes again", func() bool {
		n1.publish("orders", "again", `{}`, "")
		a.expect("again", "orders")
		_ = b.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, msg, err := b.c.ReadMessage()
		return err == nil && jsonHas(string(msg), "event", "again")
	})
}

// barrier returns a func that waits until what from has told the other nodes so far has been
// delivered on to: messages between nodes are asynchronous, but each node's are one ordered
// stream, so a publish from `from` seen on `to` proves everything before it arrived.
func barrier(from, to *node) func() {
	witness := to.connect()
	witness.subscribe("sync", "")
	return func() {
		from.publish("sync", "sync", "{}", "")
		witness.expect("sync", "sync")
	}
}

func presenceIDs(t *testing.T, f frame) []string {
	t.Helper()
	var d struct {
		Presence struct {
			IDs   []string `json:"ids"`
			Count int      `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(f.Data), &d); err != nil || d.Presence.Count != len(d.Presence.IDs) {
		t.Fatalf("presence data %q", f.Data)
	}
	sort.Strings(d.Presence.IDs)
	return d.Presence.IDs
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func contains(got []string, id string) bool {
	for _, g := range got {
		if g == id {
			return true
		}
	}
	return false
}

func jsonHas(raw, key, want string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(raw), &m) != nil {
		return false
	}
	s, _ := m[key].(string)
	return s == want
}

func count(v any, key string) int {
	m, _ := v.(map[string]any)
	f, _ := m[key].(float64)
	return int(f)
}

func expectClose(t *testing.T, c *client, code int) {
	t.Helper()
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != code {
			t.Fatalf("want close %d, got %v", code, err)
		}
		return
	}
}

// hookReceiver records webhook events as "name channel [user]".
type hookReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []string
	fail     bool // answer 503 and record nothing
	attempts int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Events []struct {
				Name, Channel string
				UserID        string `json:"user_id"`
			} `json:"events"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		h.mu.Lock()
		h.attempts++
		if h.fail {
			h.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, e := range b.Events {
			s := e.Name + " " + e.Channel
			if e.UserID != "" {
				s += " " + e.UserID
			}
			h.got = append(h.got, s)
		}
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) setFail(fail bool) {
	h.mu.Lock()
	h.fail = fail
	h.mu.Unlock()
}

func (h *hookReceiver) tries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts
}

func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func (h *hookReceiver) waitFor(t *testing.T, want ...string) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("webhooks %q", want), func() bool { return len(h.events()) >= len(want) })
	if got := h.events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("webhooks\n got %q\nwant %q", got, want)
	}
}

// hookedNodes is two nodes whose app sends every webhook to h, vacated ones after 200 ms.
func hookedNodes(t *testing.T) (h *hookReceiver, n1, n2 *node) {
	r := startRedis(t)
	h = newHookReceiver(t)
	hook := func(a *pusher.AppConfig) {
		a.Webhooks = []pusher.WebhookConfig{{URL: h.srv.URL}}
		a.WebhookDelay = 200 * time.Millisecond
	}
	return h, startNode(t, r.url(), hook), startNode(t, r.url(), hook)
}

// TestWebhooksOncePerClusterTransition: occupied/vacated and member events fire once for the
// whole cluster, not once per node, including when a node dies.
func TestWebhooksOncePerClusterTransition(t *testing.T) {
	h, n1, n2 := hookedNodes(t)
	a, b := n1.connect(), n2.connect()
	a.subscribe("orders", "")
	b.subscribe("orders", "")
	pa := n1.connect()
	pa.subscribe("presence-room", member("1"))
	pb := n2.connect()
	pb.subscribe("presence-room", member("1")) // same user, other node
	h.waitFor(t, "channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1")

	a.c.Close() // n2 still has a subscriber: nothing
	pa.c.Close()
	time.Sleep(600 * time.Millisecond)
	h.waitFor(t, "channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1")

	b.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "orders"}})
	h.waitFor(t, "channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1", "channel_vacated orders")

	// n2 dies with user 1 in presence-room: n1 sends the removals once the heartbeat expires.
	n2.crash()
	h.waitFor(t, "channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1", "channel_vacated orders",
		"member_removed presence-room 1", "channel_vacated presence-room")
}

func (c *client) signin(userData string) {
	c.t.Helper()
	c.send(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"auth": pusher.UserAuth(appKey, secret, c.socketID, userData), "user_data": userData}})
	c.expect("pusher:signin_success", "")
}

// TestWatchlistAcrossNodes: a user is online while signed in on any node; a watcher on another
// node hears each cluster-wide change once, including a dead node's users going offline.
func TestWatchlistAcrossNodes(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	bob := n2.connect()
	bob.signin(`{"id":"2"}`)
	ann := n1.connect()
	ann.signin(`{"id":"1","watchlist":["2","3"]}`)
	if f := ann.expect("pusher_internal:watchlist_events", ""); f.Data != `{"events":[{"name":"online","user_ids":["2"]},{"name":"offline","user_ids":["3"]}]}` {
		t.Fatalf("initial state %q", f.Data)
	}
	carl := n2.connect()
	carl.signin(`{"id":"3"}`)
	if f := ann.expect("pusher_internal:watchlist_events", ""); f.Data != `{"events":[{"name":"online","user_ids":["3"]}]}` {
		t.Fatalf("online %q", f.Data)
	}
	carlOn1 := n1.connect() // Carl's second tab on the other node: already online
	carlOn1.signin(`{"id":"3"}`)
	carlOn1.c.Close()
	sync := barrier(n2, n1)
	sync()
	ann.expectNothing()

	n2.crash() // Bob and Carl were only on n2
	got := map[string]bool{}
	for len(got) < 2 {
		f := ann.expect("pusher_internal:watchlist_events", "")
		var w struct {
			Events []struct {
				Name    string   `json:"name"`
				UserIDs []string `json:"user_ids"`
			} `json:"events"`
		}
		if json.Unmarshal([]byte(f.Data), &w) != nil || len(w.Events) != 1 || w.Events[0].Name != "offline" {
			t.Fatalf("after node death %q", f.Data)
		}
		for _, id := range w.Events[0].UserIDs {
			got[id] = true
		}
	}
	if !got["2"] || !got["3"] {
		t.Fatalf("offline users %v", got)
	}
}

// TestSubscriptionCountClusterWide: pusher_internal:subscription_count carries the cluster's count,
// the same number on both nodes, including after the last subscriber on one node leaves.
func TestSubscriptionCountClusterWide(t *testing.T) {
	r := startRedis(t)
	counting := func(a *pusher.AppConfig) { a.SubscriptionCount = true }
	n1, n2 := startNode(t, r.url(), counting), startNode(t, r.url(), counting)
	count := func(c *client) string {
		t.Helper()
		return c.expect("pusher_internal:subscription_count", "orders").Data
	}
	a := n1.connect()
	a.subscribe("orders", "")
	if got := count(a); got != `{"subscription_count":1}` {
		t.Fatalf("first subscriber sees %s", got)
	}
	b := n2.connect()
	b.subscribe("orders", "")
	for _, c := range []*client{b, a} {
		if got := count(c); got != `{"subscription_count":2}` {
			t.Fatalf("after a subscriber on the other node: %s", got)
		}
	}
	b.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "orders"}})
	if got := count(a); got != `{"subscription_count":1}` {
		t.Fatalf("after the other node's subscriber left: %s", got)
	}
	a.expectNothing()
	b.expectNothing()
}
