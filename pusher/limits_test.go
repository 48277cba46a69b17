package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/valyala/fasthttp"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// logSink collects a server's JSON log lines; zerolog writes from every socket's goroutine.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the decoded lines whose message or reason contains match ("" for all).
func (l *logSink) lines(t *testing.T, match string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if ln == "" || !strings.Contains(ln, match) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("log line %q: %v", ln, err)
		}
		out = append(out, m)
	}
	return out
}

func (l *logSink) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// subscriptionStatus returns a subscription_error's status, or 0 for subscription_succeeded.
func subscriptionStatus(t *testing.T, f frame) int {
	t.Helper()
	switch f.Event {
	case "pusher_internal:subscription_succeeded":
		return 0
	case "pusher:subscription_error":
		var d struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(f.Data), &d); err != nil || d.Type != "LimitReached" {
			t.Fatalf("subscription_error %q", f.Data)
		}
		return d.Status
	}
	t.Fatalf("want a subscription answer, got %+v", f)
	return -1
}

// One socket may not create channels without bound: max_subscriptions_per_connection caps its
// channels (4004), max_channels the app's (4004); re-subscribing and other sockets joining
// occupied channels still work.
func TestSubscriptionCaps(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) {
		a.MaxSubscriptionsPerConnection = 5
		a.MaxChannels = 8
		a.SubscribeRate = 1000
	}))
	c := ts.connect(t, "key1")
	for i := range 5 {
		if st := subscriptionStatus(t, c.subscribe(fmt.Sprint("room-", i), "")); st != 0 {
			t.Fatalf("subscription %d refused with %d", i, st)
		}
	}
	if st := subscriptionStatus(t, c.subscribe("room-5", "")); st != 4004 {
		t.Fatalf("6th channel on one socket: status %d, want 4004", st)
	}
	if st := subscriptionStatus(t, c.subscribe("room-0", "")); st != 0 {
		t.Fatalf("re-subscribing a channel the socket has: status %d", st)
	}
	c.send(`{"event":"pusher:unsubscribe","data":{"channel":"room-0"}}`)
	if st := subscriptionStatus(t, c.subscribe("room-5", "")); st != 0 {
		t.Fatalf("after an unsubscribe: status %d", st)
	}

	// The app now has 5 channels (room-1..5); max_channels is 8.
	d := ts.connect(t, "key1")
	for i := 6; i < 9; i++ {
		if st := subscriptionStatus(t, d.subscribe(fmt.Sprint("room-", i), "")); st != 0 {
			t.Fatalf("room-%d: status %d", i, st)
		}
	}
	if st := subscriptionStatus(t, d.subscribe("room-9", "")); st != 4004 {
		t.Fatalf("9th channel of the app: status %d, want 4004", st)
	}
	if st := subscriptionStatus(t, d.subscribe("room-1", "")); st != 0 {
		t.Fatalf("joining an occupied channel at the app's cap: status %d", st)
	}
	st := ts.srv.Stats()
	if st.Apps["app1"].Channels != 8 || st.Refused["max_subscriptions"] != 1 || st.Refused["max_channels"] != 1 {
		t.Fatalf("stats: %d channels, refused %v", st.Apps["app1"].Channels, st.Refused)
	}
	c.expectNothing()
	d.expectNothing()
}

// subscribe_rate: a burst beyond the bucket is refused with status 4301; the socket stays.
func TestSubscribeRate(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) {
		a.SubscribeRate = 2
		a.MaxSubscriptionsPerConnection = 3 // the burst
	}))
	c := ts.connect(t, "key1")
	for i := range 8 {
		c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"r%d"}}`, i%3))
	}
	limited := 0
	for range 8 {
		if subscriptionStatus(t, c.read()) == 4301 {
			limited++
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 8 subscribes refused at 2/s with a burst of 3", limited)
	}
	if ts.srv.Stats().Refused["subscribe_rate"] != uint64(limited) {
		t.Fatalf("refusals not counted: %v", ts.srv.Stats().Refused)
	}
	c.expectNothing()
}

// max_connections_per_ip: the next socket from the address gets 4100 (back off, retry) and a
// freed slot is usable again. Other addresses are not affected (loopback is exempt outside
// this test).
func TestConnectionsPerIP(t *testing.T) {
	cfg := oneApp()
	cfg.MaxConnectionsPerIP = 3
	cfg.capLoopback = true
	ts := startServer(t, cfg)
	var open []*client
	for range 3 {
		open = append(open, ts.connect(t, "key1"))
	}
	over := &client{t: t, c: ts.dialRaw(t, "/app/key1?protocol=7", nil)}
	if code := errorCode(t, over.read()); code != float64(4100) {
		t.Fatalf("4th socket from one address: code %v, want 4100", code)
	}
	over.expectClose(4100)
	open[0].c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.appByID("app1").conns.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("closed socket not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.connect(t, "key1").expectNothing()
	if n := ts.srv.Stats().Refused["ip_over_capacity"]; n != 1 {
		t.Fatalf("ip_over_capacity counted %d times", n)
	}
}

// rate_limiting as Reverb 1.9: max_attempts messages per window of decay_seconds; over it,
// pusher:error 4301 and the message is not processed; the window reopens after decay_seconds.
// With terminate_on_limit the socket is closed (4100, so pusher-js backs off).
func TestMessageRateLimiting(t *testing.T) {
	ts := startServer(t, Config{Apps: []AppConfig{
		{ID: "app1", Key: "key1", Secret: "s", RateLimiting: RateLimitConfig{Enabled: true, MaxAttempts: 5, DecaySeconds: 60}},
		{ID: "app2", Key: "key2", Secret: "s", RateLimiting: RateLimitConfig{Enabled: true, MaxAttempts: 3, DecaySeconds: 60, TerminateOnLimit: true}},
		{ID: "app3", Key: "key3", Secret: "s", RateLimiting: RateLimitConfig{Enabled: true, MaxAttempts: 1, DecaySeconds: 1}},
	}})
	c := ts.connect(t, "key1")
	for range 5 {
		c.send(`{"event":"pusher:ping","data":{}}`)
		if f := c.read(); f.Event != "pusher:pong" {
			t.Fatalf("%+v", f)
		}
	}
	for range 2 {
		c.send(`{"event":"pusher:subscribe","data":{"channel":"r"}}`) // refused, so not processed
		if code := errorCode(t, c.read()); code != float64(4301) {
			t.Fatalf("over max_attempts: code %v, want 4301", code)
		}
	}
	if ts.srv.Stats().Apps["app1"].Channels != 0 {
		t.Fatal("a rate-limited subscribe was processed")
	}

	// The window reopens decay_seconds after it began.
	e := ts.connect(t, "key3")
	e.expectNothing()
	time.Sleep(1100 * time.Millisecond)
	e.expectNothing()

	d := ts.connect(t, "key2")
	for range 3 {
		d.send(`{"event":"pusher:ping","data":{}}`)
		d.read()
	}
	d.send(`{"event":"pusher:ping","data":{}}`)
	if code := errorCode(t, d.read()); code != float64(4301) {
		t.Fatalf("terminate_on_limit: code %v, want 4301", code)
	}
	d.expectClose(4100)
	st := ts.srv.Stats()
	if st.Refused["message_rate"] < 2 || st.Kicked["message_rate"] != 1 {
		t.Fatalf("refused %v kicked %v", st.Refused, st.Kicked)
	}
}

// A flood of refused frames writes a bounded log (per-reason rate limit, with a count of what
// was suppressed), closes the flooding socket with 4009 after max_protocol_errors, and leaves
// other sockets working.
func TestRefusalFloodLogBoundedAndSocketClosed(t *testing.T) {
	var sink logSink
	ts := startServerLog(t, oneApp(), nil, zerolog.New(&sink).Level(zerolog.InfoLevel))

	// Many sockets, each below the close threshold: 600 refusals, a handful of log lines.
	const sockets, each = 30, 19
	var clients []*client
	for range sockets {
		c := ts.connect(t, "key1")
		for range each {
			c.send(`{}`)
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		for range each {
			if code := errorCode(t, c.read()); code != nil {
				t.Fatalf("code %v, want null", code)
			}
		}
	}
	if n := ts.srv.Stats().Refused["malformed_frame"]; n != sockets*each {
		t.Fatalf("%d refusals counted, want %d", n, sockets*each)
	}
	lines := sink.lines(t, "malformed_frame")
	if len(lines) > logBurst+10 {
		t.Fatalf("%d log lines for %d refusals: logging is not rate-limited", len(lines), sockets*each)
	}
	// A line after a pause reports what was suppressed meanwhile.
	time.Sleep(1100 * time.Millisecond)
	late := ts.connect(t, "key1")
	late.send(`{}`)
	late.read()
	// Every refusal is either a line or in the next line's suppressed count.
	lines = sink.lines(t, "malformed_frame")
	accounted := len(lines)
	for _, l := range lines {
		if n, ok := l["suppressed"].(float64); ok {
			accounted += int(n)
		}
	}
	if last := lines[len(lines)-1]; last["suppressed"] == nil || accounted != sockets*each+1 {
		t.Fatalf("%d lines and suppressed counts account for %d of %d refusals (last line %v)", len(lines), accounted, sockets*each+1, last)
	}

	// One socket floods: it is closed with 4009 after 20 errors; the log barely grows.
	before := sink.size()
	flood := ts.connect(t, "key1")
	go func() {
		for range 5000 {
			if flood.c.WriteMessage(websocket.TextMessage, []byte(`{}`)) != nil {
				return
			}
		}
	}()
	errs := 0
	for {
		_ = flood.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := flood.c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4009 {
				t.Fatalf("flooding socket: want close 4009, got %v after %d errors", err, errs)
			}
			break
		}
		if strings.Contains(string(msg), "4009") {
			continue // the pusher:error that precedes the close
		}
		errs++
	}
	if errs != defaultMaxProtocolErrors {
		t.Fatalf("%d errors answered before the close, want %d", errs, defaultMaxProtocolErrors)
	}
	if grown := sink.size() - before; grown > 8<<10 {
		t.Fatalf("log grew by %d bytes during a flood", grown)
	}
	if ts.srv.Stats().Kicked["protocol_errors"] != 1 {
		t.Fatalf("kicks %v", ts.srv.Stats().Kicked)
	}
	clients[1].expectNothing()
	ts.connect(t, "key1").expectNothing()
}

// The signature covers query keys lower-cased and repeated keys joined, but the handlers read
// exact keys: a signed request replayed with Filter_By_Prefix (or a second info=) would pass the
// signature and be read differently. Both are refused with 400 naming the key.
func TestAPIQueryKeysMustBeExact(t *testing.T) {
	ts := startServer(t, oneApp())
	c := ts.connect(t, "key1")
	c.subscribe("presence-room", `{"user_id":"1"}`)
	c.subscribe("public-room", "")

	path := "/apps/app1/channels"
	signed := SignAPIRequest("key1", "secret1", "GET", path, url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, nil, time.Now())
	if code, out := ts.rawAPI(t, "GET", path+"?"+signed.Encode(), ""); code != 200 || len(out["channels"].(map[string]any)) != 1 {
		t.Fatalf("signed filter: %d %v", code, out)
	}
	replay := strings.Replace(signed.Encode(), "filter_by_prefix=", "Filter_By_Prefix=", 1)
	code, out := ts.rawAPI(t, "GET", path+"?"+replay, "")
	if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), `"Filter_By_Prefix"`) {
		t.Fatalf("replay with an upper-case key: %d %v, want 400 naming the key", code, out)
	}
	dup := SignAPIRequest("key1", "secret1", "GET", "/apps/app1/channels/presence-room", url.Values{"info": {"user_count", "subscription_count"}}, nil, time.Now())
	code, out = ts.rawAPI(t, "GET", "/apps/app1/channels/presence-room?"+dup.Encode(), "")
	if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), `"info"`) {
		t.Fatalf("repeated key: %d %v, want 400 naming it", code, out)
	}
	if n := ts.srv.Stats().Refused["api_query_key"]; n != 2 {
		t.Fatalf("api_query_key counted %d times", n)
	}
}

// rogueBroker is a one-node "cluster" whose member store holds a member with user_info that is
// not JSON, as a foreign or corrupted write to Redis would. Only what a presence subscribe calls
// is implemented; the embedded nil Broker panics on anything else.
type rogueBroker struct{ Broker }

func (rogueBroker) Start(Node) error                                { return nil }
func (rogueBroker) Close() error                                    { return nil }
func (rogueBroker) Broadcast([]byte)                                {}
func (rogueBroker) RemoteConnections(string) int64                  { return 0 }
func (rogueBroker) Join(context.Context, Membership) (bool, error)  { return true, nil }
func (rogueBroker) Leave(context.Context, Membership) (bool, error) { return true, nil }
func (rogueBroker) Members(context.Context, string, string) ([]Member, error) {
	return []Member{{ID: "9", Info: []byte(`{"name":"x"}],"hash":{"admin":true`)}}, nil
}

// Presence user_info from the broker is checked before it is embedded in a frame: invalid JSON
// goes out as null, so subscription_succeeded stays parseable.
func TestBrokerMemberInfoIsValidated(t *testing.T) {
	cfg := oneApp()
	cfg.Broker = rogueBroker{}
	ts := startServer(t, cfg)
	c := ts.connect(t, "key1")
	f := c.subscribe("presence-room", `{"user_id":"1","user_info":{"name":"Ann"}}`)
	var pd struct {
		Presence struct {
			Hash map[string]json.RawMessage `json:"hash"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(f.Data), &pd); err != nil {
		t.Fatalf("subscription_succeeded data is not JSON: %q", f.Data)
	}
	if string(pd.Presence.Hash["9"]) != "null" || string(pd.Presence.Hash["1"]) != `{"name":"Ann"}` {
		t.Fatalf("members %v", pd.Presence.Hash)
	}
}

// accept_client_events_from: all does not let a socket that never authorized speak on a private
// or presence channel: the sender must be subscribed in every mode (4009), nothing is relayed.
func TestClientEventsNeedSubscriptionInAllMode(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) { a.AcceptClientEventsFrom = "all" }))
	member, intruder := ts.connect(t, "key1"), ts.connect(t, "key1")
	member.subscribe("private-orders", "")
	member.subscribe("presence-room", `{"user_id":"1"}`)
	for _, ch := range []string{"private-orders", "presence-room"} {
		intruder.send(`{"event":"client-fake","channel":"` + ch + `","data":{"forged":true}}`)
		if code := errorCode(t, intruder.read()); code != float64(4009) {
			t.Fatalf("%s: code %v, want 4009", ch, code)
		}
	}
	member.expectNothing() // nothing was relayed

	// A subscribed sender still reaches the others.
	other := ts.connect(t, "key1")
	other.subscribe("private-orders", "")
	other.send(`{"event":"client-typing","channel":"private-orders","data":{}}`)
	if f := member.read(); f.Event != "client-typing" {
		t.Fatalf("relay from a subscriber: %+v", f)
	}
}

// At debug level, connects, closes (code, socket id, app, remote) and API publishes (app,
// channel count, event name; never data or signatures) are logged; at info level they cost a
// publish nothing.
func TestDebugLogs(t *testing.T) {
	var sink logSink
	ts := startServerLog(t, oneApp(), nil, zerolog.New(&sink).Level(zerolog.DebugLevel))
	c := ts.connect(t, "key1")
	c.subscribe("orders", "")
	if code, _ := ts.api(t, "POST", "/apps/app1/events", nil, `{"name":"order.shipped","channels":["orders","other"],"data":"secret-payload"}`); code != 200 {
		t.Fatal(code)
	}
	c.read()
	_ = c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "bye"), time.Now().Add(time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.lines(t, "socket closed")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no close line")
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn := sink.lines(t, "socket connected")
	closed := sink.lines(t, "socket closed")
	pub := sink.lines(t, "API publish")
	if len(conn) != 1 || conn[0]["socket_id"] != c.socketID || conn[0]["app"] != "app1" || !strings.HasPrefix(fmt.Sprint(conn[0]["remote"]), "127.0.0.1:") {
		t.Fatalf("connect lines %v", conn)
	}
	if len(closed) != 1 || closed[0]["socket_id"] != c.socketID || closed[0]["code"] != float64(4321) || closed[0]["app"] != "app1" || closed[0]["remote"] != conn[0]["remote"] {
		t.Fatalf("close lines %v", closed)
	}
	if len(pub) != 1 || pub[0]["channels"] != float64(2) || pub[0]["event"] != "order.shipped" || pub[0]["app"] != "app1" {
		t.Fatalf("publish lines %v", pub)
	}
	sink.mu.Lock()
	all := sink.buf.String()
	sink.mu.Unlock()
	if strings.Contains(all, "secret-payload") || strings.Contains(all, "auth_signature") {
		t.Fatalf("data or signature in the log:\n%s", all)
	}

	// Debug off: a publish allocates what it does with no logger at all.
	measure := func(log zerolog.Logger) float64 {
		s, err := NewServer(oneApp(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer stopForTest(s)
		attach(t, s, "orders", 10)
		app := s.appByID("app1")
		return testing.AllocsPerRun(50, func() { s.publish(app, "e", []string{"orders"}, "payload", "") })
	}
	if nop, info := measure(zerolog.Nop()), measure(zerolog.New(&sink).Level(zerolog.InfoLevel)); info != nop {
		t.Fatalf("allocations per publish: %v at info level, %v with no logger", info, nop)
	}
}

// Refused handshakes are counted each and logged rate-limited too.
func TestHandshakeRefusalLogBounded(t *testing.T) {
	var sink logSink
	ts := startServerLog(t, oneApp(), nil, zerolog.New(&sink).Level(zerolog.InfoLevel))
	const n = 60
	for range n {
		cl := &client{t: t, c: ts.dialRaw(t, "/app/nokey?protocol=7", nil)}
		if code := errorCode(t, cl.read()); code != float64(4001) {
			t.Fatalf("code %v", code)
		}
		cl.c.Close()
	}
	if got := ts.srv.Stats().Refused["unknown_app_key"]; got != n {
		t.Fatalf("%d refusals counted, want %d", got, n)
	}
	if lines := sink.lines(t, "connection refused"); len(lines) > logBurst+5 {
		t.Fatalf("%d log lines for %d refused handshakes", len(lines), n)
	}
}

// Behind a trusted balancer every socket comes from its address: the cap counts the visitor the
// proxy resolved (Config.ClientIP), not the TCP peer.
func TestConnectionsPerIPCountsTheResolvedVisitor(t *testing.T) {
	cfg := oneApp()
	cfg.MaxConnectionsPerIP = 1
	cfg.capLoopback = true
	cfg.ClientIP = func(ctx *fasthttp.RequestCtx) netip.Addr {
		// Stands in for proxy.ClientIP, which cmd/frontdoor passes.
		a, _ := netip.ParseAddr(string(ctx.Request.Header.Peek("X-Test-Visitor")))
		return a
	}
	ts := startServer(t, cfg)
	dial := func(visitor string) *client {
		return &client{t: t, c: ts.dialRaw(t, "/app/key1?protocol=7", http.Header{"X-Test-Visitor": {visitor}})}
	}
	a, b := dial("203.0.113.1"), dial("203.0.113.2")
	for _, c := range []*client{a, b} {
		if f := c.read(); f.Event != "pusher:connection_established" {
			t.Fatalf("a visitor's first socket: %+v", f)
		}
	}
	again := dial("203.0.113.1")
	if code := errorCode(t, again.read()); code != float64(4100) {
		t.Fatalf("the same visitor's second socket: code %v, want 4100", code)
	}
}
