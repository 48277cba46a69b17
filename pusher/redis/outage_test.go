package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/pusher"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// TestRedisOutageDelaysPublishes: publishes made while Redis is down are kept and reach the
// other node's subscriber, in order, once Redis is back on the same port (empty: it lost every
// key); meanwhile the channel queries say their answer is this node's only.
func TestRedisOutageDelaysPublishes(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	b := n2.connect()
	b.subscribe("orders", "")
	p := n2.connect()
	p.subscribe("presence-room", member("1"))
	n1.publish("orders", "before", `{}`, "") // n1 has seen n2 listening
	b.expect("before", "orders")

	paths := []string{
		"/apps/" + appID + "/channels",
		"/apps/" + appID + "/channels/orders",
		"/apps/" + appID + "/channels/presence-room/users",
	}
	for _, path := range paths {
		if st, h, out := n1.apiHeader("GET", path, ""); st != 200 || h.Get(pusher.PartialHeader) != "" {
			t.Fatalf("GET %s while connected: %d %v partial=%q", path, st, out, h.Get(pusher.PartialHeader))
		}
	}

	r.stop()
	eventually(t, 10*time.Second, "n1 reports not ready", func() bool { return n1.srv.Ready() != nil })
	const n = 50
	for i := range n {
		n1.publish("orders", "during", fmt.Sprintf(`{"i":%d}`, i), "")
	}
	for _, path := range paths {
		if st, h, out := n1.apiHeader("GET", path, ""); st != 200 || h.Get(pusher.PartialHeader) != "cluster-unavailable" {
			t.Fatalf("GET %s during the outage: %d %v partial=%q", path, st, out, h.Get(pusher.PartialHeader))
		}
	}
	time.Sleep(2 * time.Second) // a few seconds of outage, as a Redis restart or failover takes

	r.start()
	for i := range n {
		f := b.expect("during", "orders")
		if want := fmt.Sprintf(`{"i":%d}`, i); f.Data != want {
			t.Fatalf("message %d after the outage: %q, want %q", i, f.Data, want)
		}
	}
	b.expectNothing()
	if d := n1.broker.Dropped(); d != 0 {
		t.Fatalf("%d messages counted dropped", d)
	}
	eventually(t, 15*time.Second, "answers whole again", func() bool {
		_, h, _ := n1.apiHeader("GET", paths[0], "")
		return h.Get(pusher.PartialHeader) == ""
	})
}

// TestOutageQueueBounds: past OutageQueue the oldest messages are dropped and counted; what is
// kept still arrives in order.
func TestOutageQueueBounds(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	n1.broker.cfg.OutageQueue = 5 // read by the publisher only while Redis is down
	b := n2.connect()
	b.subscribe("orders", "")
	n1.publish("orders", "before", `{}`, "")
	b.expect("before", "orders")

	r.stop()
	eventually(t, 10*time.Second, "n1 reports not ready", func() bool { return n1.srv.Ready() != nil })
	for i := range 20 {
		n1.publish("orders", "during", fmt.Sprintf(`{"i":%d}`, i), "")
	}
	eventually(t, 10*time.Second, "15 dropped", func() bool { return n1.broker.Dropped() == 15 })
	r.start()
	for i := 15; i < 20; i++ {
		if f := b.expect("during", "orders"); f.Data != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("kept message %q, want i=%d", f.Data, i)
		}
	}
	b.expectNothing()
}

// syncBuffer is the shared log sink of internal/testenv.
type syncBuffer = testenv.LogBuffer

// TestGoRedisLogRateLimited: go-redis' own lines come out as zerolog JSON, one per interval, with
// the count of those left out.
func TestGoRedisLogRateLimited(t *testing.T) {
	var buf syncBuffer
	l := &libLog{lines: ratelog.New(1, time.Hour)}
	zl := zerolog.New(&buf)
	l.log.Store(&zl)
	for i := range 100 {
		l.Printf(t.Context(), "redis: connection pool: failed to dial after %d attempts\n", i)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines for 100 library messages within the interval:\n%s", len(lines), buf.String())
	}
	var e struct {
		Component  string `json:"component"`
		Message    string `json:"message"`
		Suppressed int    `json:"suppressed"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Component != "go-redis" || e.Message != "redis: connection pool: failed to dial after 0 attempts" {
		t.Fatalf("line %q (%v)", lines[0], err)
	}
	// The other 99 are counted for the next line (internal/ratelog carries the count over).
	if n := l.lines.Flush(); n != 99 {
		t.Fatalf("%d lines counted as suppressed, want 99", n)
	}
	// The broker installs it: go-redis keeps one process-wide logger.
	if _, err := New(Config{URL: "redis://127.0.0.1:1/0"}, zl); err != nil || goredisLog.log.Load().GetLevel() != zl.GetLevel() {
		t.Fatal(err)
	}
}

// TestRedisURLPasswordRedacted: a password holding '@' (cut at the first '@' it used to show
// half of it) appears in no log line, health error or config error.
func TestRedisURLPasswordRedacted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "redis://:p@ssw0rd@" + ln.Addr().String() + "/0" // nobody listens once closed
	ln.Close()
	var buf syncBuffer
	b, err := New(Config{URL: u, Heartbeat: 100 * time.Millisecond}, zerolog.New(&buf))
	if err != nil {
		t.Fatal(err)
	}
	s, err := pusher.NewServer(pusher.Config{Apps: []pusher.AppConfig{{ID: appID, Key: appKey, Secret: secret}}, Broker: b}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	eventually(t, 10*time.Second, "the outage is logged", func() bool { return strings.Contains(buf.String(), "Redis unavailable") })
	health := b.Healthy()
	_, cfgErr := New(Config{URL: "redis://:p@ssw0rd@host:notaport/0"}, zerolog.Nop())
	for what, s := range map[string]string{"log": buf.String(), "health": fmt.Sprint(health), "config error": fmt.Sprint(cfgErr)} {
		if strings.Contains(s, "ssw0rd") || strings.Contains(s, "p@") {
			t.Errorf("%s shows the password: %s", what, s)
		}
		if !strings.Contains(s, ":xxxxx@") {
			t.Errorf("%s does not show the redacted URL: %s", what, s)
		}
	}
}
