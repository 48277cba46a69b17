package redis

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// The leak check compares goroutine stacks, as go.uber.org/goleak does, without the dependency:
// a goroutine that exists after Close, did not exist before the broker started, and runs this
// package's or go-redis' code is a leak.

// goroutines returns the stack of every goroutine, by its "goroutine N" header.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, " [")
		out[header] = g
	}
	return out
}

// leaked lists the goroutines started since before that run the broker's or go-redis' code.
func leaked(before map[string]string) []string {
	var out []string
	for id, stack := range goroutines() {
		if _, old := before[id]; old {
			continue
		}
		if strings.Contains(stack, "frontdoor/pusher/redis.(*Broker)") || strings.Contains(stack, "redis/go-redis/") {
			out = append(out, stack)
		}
	}
	return out
}

// blockingNode is a pusher.Node whose presence rebuild and answers wait for release, so a test
// can hold the broker's own goroutines inside them.
type blockingNode struct {
	id      string
	entered chan string
	release chan struct{}
}

func (n *blockingNode) NodeID() string                  { return n.id }
func (n *blockingNode) Deliver([]byte)                  {}
func (n *blockingNode) MembersGone([]pusher.Membership) {}
func (n *blockingNode) Connections() map[string]int64   { return nil }
func (n *blockingNode) AdoptWebhooks([][]byte)          {}
func (n *blockingNode) Reconnected(_, _ []pusher.Membership) error {
	n.entered <- "resync"
	<-n.release
	return nil
}
func (n *blockingNode) Answer([]byte) []byte { n.entered <- "answer"; <-n.release; return []byte("{}") }
func newBlockingNode(id string) *blockingNode {
	return &blockingNode{id: id, entered: make(chan string, 16), release: make(chan struct{})}
}

// TestCloseWaitsForEveryGoroutine: Close returns only once every goroutine the broker started has
// ended, including a presence rebuild and an answer to another node still in progress; after
// it, no goroutine of the broker or its Redis client is left.
func TestCloseWaitsForEveryGoroutine(t *testing.T) {
	r := startRedis(t)
	before := goroutines()

	cfg := Config{URL: r.url(), Prefix: "leak", Heartbeat: 200 * time.Millisecond}
	b1, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n1 := newBlockingNode("1")
	if err := b1.Start(n1); err != nil {
		t.Fatal(err)
	}
	if got := <-n1.entered; got != "resync" {
		t.Fatalf("first callback %s", got)
	}
	b2, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n2 := newBlockingNode("2")
	close(n2.release)
	if err := b2.Start(n2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b2 connected", func() bool { return b2.Healthy() == nil })
	askDone := make(chan struct{})
	go func() {
		defer close(askDone)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // b1 closes before it answers
		defer cancel()
		_, _ = b2.Ask(ctx, []byte("{}"))
	}()
	if got := <-n1.entered; got != "answer" {
		t.Fatalf("second callback %s", got)
	}

	closed := make(chan error, 1)
	go func() { closed <- b1.Close() }()
	select {
	case <-closed:
		t.Fatalf("Close returned while its goroutines were still running:\n%s", strings.Join(leaked(before), "\n\n"))
	case <-time.After(time.Second): // Close is waiting for them, as it must
	}
	close(n1.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	<-askDone
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if l := leaked(before); len(l) > 0 {
		t.Logf("right after Close: %d", len(l))
		// go-redis may still be unwinding a closed connection's reader: give it a moment, no more.
		eventually(t, 5*time.Second, "no goroutine of the brokers left", func() bool { l = leaked(before); return len(l) == 0 })
	}
}
