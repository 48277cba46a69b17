package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// link is a TCP forwarder in front of redis-server that a test can cut: one node's view of
// Redis goes dark (a partition, or a process stalled past its heartbeats) while Redis and the
// other nodes carry on.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func newLink(t *testing.T, r *redisServer) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: "127.0.0.1:" + strconv.Itoa(r.port), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); l.sever(true) })
	go l.accept()
	return l
}

func (l *link) url() string { return "redis://" + l.ln.Addr().String() + "/0" }

func (l *link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.cut {
			l.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[c], l.conns[up] = struct{}{}, struct{}{}
		l.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// sever closes every forwarded connection and, while cut, refuses new ones.
func (l *link) sever(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// twoMembers is two nodes, n1 reaching Redis through a link the test can cut, with one
// presence member each on presence-x: user 1 on n1 (socket p1), user 2 on n2 (p2).
func twoMembers(t *testing.T) (l *link, n1, n2 *node, p1, p2 *client) {
	r := startRedis(t)
	l = newLink(t, r)
	n1, n2 = startNode(t, l.url()), startNode(t, r.url())
	p1 = n1.connect()
	p1.subscribe("presence-x", member("1"))
	// Registered in Redis before p2 joins: on a loaded machine a heartbeat can time out and the
	// join be registered by the rebuild that follows, a second later.
	eventually(t, 10*time.Second, "user 1 registered", func() bool {
		_, out := n2.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
		users, _ := out["users"].([]any)
		return len(users) == 1
	})
	barrier(n1, n2)()
	p2 = n2.connect()
	p2.subscribe("presence-x", member("2"))
	p1.expect("pusher_internal:member_added", "presence-x")
	return l, n1, n2, p1, p2
}

// TestCutOffNodeReturns: a node cut off from Redis for longer than three heartbeats is declared
// dead; the others announce its member gone, and when it comes back it announces that member
// again, once.
func TestCutOffNodeReturns(t *testing.T) {
	l, n1, n2, p1, p2 := twoMembers(t)

	l.sever(true)
	if f := p2.expect("pusher_internal:member_removed", "presence-x"); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_removed %q", f.Data)
	}
	l.sever(false)
	if f := p2.expect("pusher_internal:member_added", "presence-x"); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_added on return %q", f.Data)
	}
	barrier(n1, n2)()
	p2.expectNothing()
	p1.expectNothing()
}

// TestDeclaredDeadBeforeRebuild: a node can be declared dead while Redis holds none of its
// members, say right after a Redis restart before it re-registered them. Nobody was told the
// members left, so nobody is told they joined when the node re-registers them.
func TestDeclaredDeadBeforeRebuild(t *testing.T) {
	l, n1, n2, p1, p2 := twoMembers(t)

	l.sever(true)
	rdb := goredis.NewClient(&goredis.Options{Addr: l.target})
	defer rdb.Close()
	ctx := context.Background()
	// Redis loses everything; n1 is listed as a node, as its first beat after the restart
	// would list it, but its heartbeat lapsed and its members are not back yet.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, "test:nodes", n1.broker.id).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "n2 declares n1 dead", func() bool {
		in, err := rdb.SIsMember(ctx, "test:nodes", n1.broker.id).Result()
		return err == nil && !in
	})
	l.sever(false)
	// Rebuilt, and n1's resync (which would announce the member) has returned.
	eventually(t, 10*time.Second, "presence rebuilt", func() bool {
		if !n1.rebuilt() {
			return false
		}
		_, out := n2.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
		users, _ := out["users"].([]any)
		return len(users) == 2
	})
	barrier(n1, n2)()
	p2.expectNothing()
	p1.expectNothing()
}

// TestJoinDuringBlipAnnounced: a join while the broker counts Redis as failing (one heartbeat
// timed out) is served locally; once Redis answers again, the node registers the member and the
// other nodes hear of it, without waiting for a reconnect.
func TestJoinDuringBlipAnnounced(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	p2 := n2.connect()
	p2.subscribe("presence-x", member("2"))
	n1.broker.setHealth(errors.New("a heartbeat timed out"))
	p1 := n1.connect()
	p1.subscribe("presence-x", member("1"))
	if f := p2.expect("pusher_internal:member_added", "presence-x"); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_added %q", f.Data)
	}
	_, out := n2.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
	if users, _ := out["users"].([]any); len(users) != 2 {
		t.Fatalf("users %v", out)
	}
	barrier(n1, n2)()
	p2.expectNothing()
}

// TestLeaveDuringBlipOnce: a member who leaves while the broker counts Redis as failing is
// announced gone to its own node's sockets at once and to the other nodes after the rebuild,
// each socket hearing it once.
func TestLeaveDuringBlipOnce(t *testing.T) {
	r := startRedis(t)
	n1, n2 := startNode(t, r.url()), startNode(t, r.url())
	p1, q := n1.connect(), n1.connect()
	p1.subscribe("presence-x", member("1"))
	q.subscribe("presence-x", member("2"))
	p1.expect("pusher_internal:member_added", "presence-x")
	eventually(t, 10*time.Second, "both registered", func() bool {
		_, out := n2.api("GET", "/apps/"+appID+"/channels/presence-x/users", "")
		users, _ := out["users"].([]any)
		return len(users) == 2
	})
	o := n2.connect()
	o.subscribe("presence-x", member("3"))
	q.expect("pusher_internal:member_added", "presence-x")

	n1.broker.setHealth(errors.New("a heartbeat timed out"))
	p1.c.Close()
	if f := q.expect("pusher_internal:member_removed", "presence-x"); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_removed on n1 %q", f.Data)
	}
	if f := o.expect("pusher_internal:member_removed", "presence-x"); !jsonHas(f.Data, "user_id", "1") {
		t.Fatalf("member_removed on n2 %q", f.Data)
	}
	eventually(t, 10*time.Second, "the rebuild after the blip", n1.rebuilt)
	barrier(n1, n2)()
	q.expectNothing()
	o.expectNothing()
}
