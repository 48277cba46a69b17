package redis

import (
	"context"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// heartbeats keeps this node registered, reports its connection counts, and reaps nodes whose
// heartbeat expired (each dead node once cluster-wide: reapScript lets one caller win).
func (b *Broker) heartbeats() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.Heartbeat)
	defer t.Stop()
	registered := false
	for {
		registered = b.beat(registered)
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat is one heartbeat; it returns whether this node is registered afterwards.
func (b *Broker) beat(registered bool) bool {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Heartbeat)
	defer cancel()
	nodesKey, connsKey := b.key("nodes"), b.key("conns")
	pipe := b.rdb.Pipeline()
	pipe.Set(ctx, b.key("hb", b.id), "1", 3*b.cfg.Heartbeat)
	added := pipe.SAdd(ctx, nodesKey, b.id)
	for app, n := range b.node.Connections() {
		pipe.HSet(ctx, connsKey, app+"\x00"+b.id, n)
	}
	members := pipe.SMembers(ctx, nodesKey)
	conns := pipe.HGetAll(ctx, connsKey)
	if _, err := pipe.Exec(ctx); err != nil {
		b.setHealth(err)
		return registered
	}
	b.setHealth(nil)
	if added.Val() == 1 && registered {
		// Redis forgot this node: it restarted, or the others found our heartbeat expired and
		// removed our members. Put them back.
		b.requestResync()
	} else if b.resyncDue.Load() {
		b.spawn(b.resync) // an earlier attempt did not finish
	}

	var others []string
	for _, n := range members.Val() {
		if n != b.id {
			others = append(others, n)
		}
	}
	dead := map[string]bool{}
	if len(others) > 0 {
		pipe := b.rdb.Pipeline()
		alive := make([]*goredis.IntCmd, len(others))
		for i, n := range others {
			alive[i] = pipe.Exists(ctx, b.key("hb", n))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.setHealth(err)
			return true
		}
		for i, n := range others {
			if alive[i].Val() == 0 {
				dead[n] = true
				b.reap(ctx, n)
			}
		}
	}

	b.adoptOrphans(ctx)

	remote := map[string]int64{}
	for field, v := range conns.Val() {
		app, node, ok := strings.Cut(field, "\x00")
		if !ok || node == b.id || dead[node] {
			continue
		}
		var n int64
		for _, c := range v {
			if c < '0' || c > '9' {
				n = 0
				break
			}
			n = n*10 + int64(c-'0')
		}
		remote[app] += n
	}
	b.remote.Store(&remote)
	return true
}

// reap removes a dead node's entries and announces each of its members that is on no other node.
func (b *Broker) reap(ctx context.Context, node string) {
	gone, err := reapScript.Run(ctx, b.rdb, []string{b.key("nodes")}, b.cfg.Prefix, node, "0", "1").StringSlice()
	if err != nil {
		b.setHealth(err)
		return
	}
	b.log.Warn().Str("node", node).Int("members_gone", len(gone)).Msg("cluster: node stopped heartbeating; its presence members removed")
	// Its webhooks first: a channel_occupied it never delivered comes before the
	// channel_vacated its death causes.
	b.adopt(ctx, node)
	b.node.MembersGone(parseEntries(gone))
}

// requestResync marks the presence entries for rebuilding and starts a rebuild; if that cannot
// finish (Redis failed again, or the bus is not subscribed yet), every heartbeat retries it.
func (b *Broker) requestResync() {
	b.resyncDue.Store(true)
	b.spawn(b.resync)
}

// resync rebuilds this node's presence entries after a reconnect: drop what Redis holds for this
// node, then let the node register what it holds now. Members dropped and not re-registered
// left while Redis could not be told. It waits for the bus: the members it announces would
// otherwise reach no node, and one reconnect triggers it twice (heartbeat and re-subscription)
// in an order nobody controls.
func (b *Broker) resync() {
	b.resyncMu.Lock()
	defer b.resyncMu.Unlock()
	if b.Healthy() != nil || !b.resyncDue.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// What the others announced gone when they declared this node dead: taken out of Redis at
	// once (a mark left behind would announce those members again at a later reconnect) and
	// kept here until a rebuild has announced them, so one cut short still does.
	reapedKey := b.key("reaped", b.id)
	tx := b.rdb.TxPipeline()
	taken := tx.SMembers(ctx, reapedKey)
	tx.Del(ctx, reapedKey)
	if _, err := tx.Exec(ctx); err != nil {
		b.setHealth(err)
		b.resyncDue.Store(true)
		return
	}
	b.reaped = append(b.reaped, taken.Val()...)
	gone, err := reapScript.Run(ctx, b.rdb, []string{b.key("nodes")}, b.cfg.Prefix, b.id, "1", "0").StringSlice()
	if err != nil {
		b.setHealth(err)
		b.resyncDue.Store(true)
		return
	}
	if err := b.node.Reconnected(parseEntries(gone), parseEntries(b.reaped)); err != nil {
		b.resyncDue.Store(true) // the broker call that failed has recorded why
		return
	}
	b.reaped = nil
}

func parseEntries(es []string) []pusher.Membership {
	ms := make([]pusher.Membership, 0, len(es))
	for _, e := range es {
		if m, ok := parseEntry(e); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

func parseEntry(e string) (pusher.Membership, bool) {
	app, rest, ok := strings.Cut(e, "\x00")
	channel, user, ok2 := strings.Cut(rest, "\x00")
	return pusher.Membership{App: app, Channel: channel, User: user}, ok && ok2
}
