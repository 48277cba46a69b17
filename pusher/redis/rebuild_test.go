package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// joinHook is the real broker with one user's next Join made to fail the way a Redis error
// fails it (the broker counted unhealthy, a rebuild due), or to wait until released: the moments
// in a rebuild a test needs, which real timing would hit only by chance.
type joinHook struct {
	*Broker
	mu      sync.Mutex
	user    string
	fail    bool
	reached chan struct{}   // closed when the hooked Join happens
	release <-chan struct{} // a waiting Join goes on when this closes
}

func (h *joinHook) arm(user string, fail bool, release <-chan struct{}) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.user, h.fail, h.release, h.reached = user, fail, release, make(chan struct{})
	return h.reached
}

func (h *joinHook) Join(ctx context.Context, m pusher.Membership) (bool, error) {
	h.mu.Lock()
	hooked := h.user != "" && m.User == h.user
	fail, release, reached := h.fail, h.release, h.reached
	if hooked {
		h.user = ""
	}
	h.mu.Unlock()
	if hooked {
		close(reached)
		if fail {
			err := errors.New("injected: Redis failed in the middle of the rebuild")
			h.setHealth(err)
			h.resyncDue.Store(true)
			return false, err
		}
		<-release
	}
	return h.Broker.Join(ctx, m)
}

// threeMembers is n1 (its broker hooked) with users 1 and 2 (sockets p1, q), n2 with user 3
// (socket o), everyone registered and announced.
func threeMembers(t *testing.T) (h *joinHook, n1, n2 *node, p1, q, o *client) {
	r := startRedis(t)
	n1 = startNodeWith(t, r.url(), func(b *Broker) pusher.Broker { h = &joinHook{Broker: b}; return h })
	n2 = startNode(t, r.url())
	p1, q = n1.connect(), n1.connect()
	p1.subscribe("presence-x", member("1"))
	q.subscribe("presence-x", member("2"))
	p1.expect("pusher_internal:member_added", "presence-x")
	eventually(t, 10*time.Second, "users 1 and 2 registered", func() bool { return len(users(n2)) == 2 })
	barrier(n1, n2)()
	o = n2.connect()
	o.subscribe("presence-x", member("3"))
	p1.expect("pusher_internal:member_added", "presence-x")
	q.expect("pusher_internal:member_added", "presence-x")
	return h, n1, n2, p1, q, o
}

func users(n *node) map[string]bool {
	_, out := n.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
	list, _ := out["users"].([]any)
	ids := map[string]bool{}
	for _, u := range list {
		if m, ok := u.(map[string]any); ok {
			id, _ := m["id"].(string)
			ids[id] = true
		}
	}
	return ids
}

// blip makes n1's broker count Redis as failed once, with its presence entries to rebuild: the
// next heartbeat finds Redis well and starts the rebuild.
func blip(n *node) {
	n.broker.setHealth(errors.New("a heartbeat timed out"))
	n.broker.resyncDue.Store(true)
}

// TestLeaveBeforeRebuildRetry: Redis fails again in the middle of the rebuild after an outage,
// before user 2 is registered again; Redis is back, and user 2 leaves before the next attempt.
// The broker holds nothing for user 2 then: its own node's sockets hear member_removed at
// once, the other node's from the next attempt, each once, and the cluster's list lacks it.
func TestLeaveBeforeRebuildRetry(t *testing.T) {
	h, n1, n2, p1, q, o := threeMembers(t)

	failed := h.arm("2", true, nil)
	blip(n1)
	<-failed
	n1.broker.resyncMu.Lock() // the next attempt waits until user 2 has left
	var unlock sync.Once
	resume := func() { unlock.Do(n1.broker.resyncMu.Unlock) }
	t.Cleanup(resume) // before the nodes stop: their brokers wait for the attempt
	eventually(t, 10*time.Second, "Redis counted well again", func() bool { return n1.broker.Healthy() == nil })
	user2Leaves(t, n1, n2, p1, q, o, resume)
}

// TestLeaveDuringRebuildNotRegistered: user 2 leaves while the rebuild after an outage is
// registering the members it listed, user 2 among them, before its turn. The rebuild must not
// leave user 2 registered (every node's list would show a member nobody has), and each socket
// hears member_removed once.
func TestLeaveDuringRebuildNotRegistered(t *testing.T) {
	h, n1, n2, p1, q, o := threeMembers(t)

	release := make(chan struct{})
	var once sync.Once
	resume := func() { once.Do(func() { close(release) }) }
	t.Cleanup(resume) // before the nodes stop: their brokers wait for the rebuild
	reached := h.arm("2", false, release)
	blip(n1)
	<-reached
	user2Leaves(t, n1, n2, p1, q, o, resume)
}

// user2Leaves closes user 2's socket while the rebuild is held, lets the rebuild go on (resume),
// and checks what each node's sockets and the cluster's list then say: member_removed for user 2
// once on each node (n1's at once, n2's from the rebuild), users 1 and 3 listed.
func user2Leaves(t *testing.T, n1, n2 *node, p1, q, o *client, resume func()) {
	t.Helper()
	q.c.Close()
	if f := p1.expect("pusher_internal:member_removed", "presence-x"); !jsonHas(f.Data, "user_id", "2") {
		t.Fatalf("member_removed on n1 %q", f.Data)
	}
	resume()
	if f := o.expect("pusher_internal:member_removed", "presence-x"); !jsonHas(f.Data, "user_id", "2") {
		t.Fatalf("member_removed on n2 %q", f.Data)
	}
	eventually(t, 10*time.Second, "the rebuild", n1.rebuilt)
	if u := users(n2); len(u) != 2 || !u["1"] || !u["3"] {
		t.Fatalf("users after the rebuild: %v, want 1 and 3", u)
	}
	barrier(n1, n2)()
	p1.expectNothing()
	o.expectNothing()
}
