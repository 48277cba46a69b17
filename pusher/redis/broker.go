package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// Broker is a pusher.Broker over one Redis.
type Broker struct {
	cfg  Config
	log  zerolog.Logger
	rdb  *goredis.Client
	ps   *goredis.PubSub
	node pusher.Node
	id   string

	queue   chan outbound
	whq     chan whOp // webhook journal changes, for journaler
	pending sync.Map  // ask id → chan []byte
	askSeq  atomic.Uint64

	health      atomic.Pointer[error] // nil pointer: commands succeed
	listening   atomic.Bool           // subscribed to the bus: other nodes' messages arrive
	errLogged   atomic.Int64          // when an error was last logged (Unix ns)
	remote      atomic.Pointer[map[string]int64]
	dropped     atomic.Uint64
	dropLogged  atomic.Int64  // when a drop was last logged (Unix ns)
	backlog     atomic.Int64  // messages the publisher holds, for Queued
	journalLost atomic.Uint64 // webhook journal changes not written
	resyncMu    sync.Mutex
	resyncDue   atomic.Bool // Redis may have lost this node's entries: resync until one succeeds
	reaped      []string    // entries the others announced gone, until a resync re-announces them; under resyncMu

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// outbound is a queued pub/sub message.
type outbound struct {
	channel string
	payload string
	at      int64 // when it was queued (Unix ns), for OutageMaxAge
}

var _ pusher.Broker = (*Broker)(nil)

// New checks cfg and prepares the client; nothing is dialled until Start.
func New(cfg Config, log zerolog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts, _ := goredis.ParseURL(cfg.URL)
	// Short timeouts and one retry: a socket waiting on Redis is a socket not being served, and
	// when Redis is down the node answers from its own state instead (pusher.Broker).
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.MaxRetries = 1
	opts.ClientName = "frontdoor"
	b := &Broker{cfg: cfg, log: log, rdb: goredis.NewClient(opts), queue: make(chan outbound, cfg.QueueSize), whq: make(chan whOp, cfg.QueueSize)}
	goredisLog.log.Store(&b.log)
	down := errors.New("not connected yet")
	b.health.Store(&down)
	empty := map[string]int64{}
	b.remote.Store(&empty)
	return b, nil
}

func (b *Broker) key(parts ...string) string {
	return b.cfg.Prefix + ":" + strings.Join(parts, ":")
}

func (b *Broker) bus() string                                 { return b.key("bus") }
func (b *Broker) inbox(node string) string                    { return b.key("node", node) }
func (b *Broker) channelKey(kind, app, channel string) string { return b.key(kind, app, channel) }

// Start implements pusher.Broker.
func (b *Broker) Start(n pusher.Node) error {
	b.node, b.id = n, n.NodeID()
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.ps = b.rdb.Subscribe(b.ctx) // subscribes lazily, inside receive, so a down Redis does not fail Start
	b.wg.Add(4)
	go b.receive(b.ps)
	go b.publisher()
	go b.heartbeats()
	go b.journaler()
	b.log.Info().Str("redis", pusher.RedactURL(b.cfg.URL)).Str("prefix", b.cfg.Prefix).Str("node", b.id).Msg("cluster: joining over Redis")
	return nil
}

// Close implements pusher.Broker: stop every goroutine the broker started (and wait for them:
// an answer or a presence rebuild in progress finishes first), then remove this node's entries
// so its members leave now rather than after the heartbeat expires.
func (b *Broker) Close() error {
	b.cancel()
	_ = b.ps.Close() // a blocked Receive does not watch the context
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.leaveJournal(ctx)
	gone, err2 := reapScript.Run(ctx, b.rdb, []string{b.key("nodes")}, b.cfg.Prefix, b.id, "0", "0").StringSlice()
	err = errors.Join(err, err2)
	if err2 == nil && len(gone) > 0 {
		// Sockets normally leave before Close; whatever is left is announced by the others' view
		// of the keys being gone. Nothing to publish: this node is leaving.
		b.log.Info().Int("members", len(gone)).Msg("cluster: removed members still registered at exit")
	}
	return errors.Join(err, b.rdb.Close())
}

// Healthy implements pusher.Broker.
func (b *Broker) Healthy() error {
	if p := b.health.Load(); p != nil {
		return fmt.Errorf("redis %s: %w", pusher.RedactURL(b.cfg.URL), *p)
	}
	if !b.listening.Load() {
		return fmt.Errorf("redis %s: not subscribed to the other nodes' messages yet", pusher.RedactURL(b.cfg.URL))
	}
	return nil
}

// Dropped counts broadcasts lost to a full queue or to an outage longer than its bounds.
func (b *Broker) Dropped() uint64 { return b.dropped.Load() }

// setHealth records whether Redis answered, logging transitions (and errors at most every 10 s).
func (b *Broker) setHealth(err error) {
	if err == nil {
		if prev := b.health.Swap(nil); prev != nil {
			b.log.Info().Msg("cluster: Redis reachable")
		}
		return
	}
	if b.ctx.Err() != nil {
		return
	}
	prev := b.health.Swap(&err)
	now := time.Now().UnixNano()
	if last := b.errLogged.Load(); prev == nil || now-last > int64(10*time.Second) {
		b.errLogged.Store(now)
		b.log.Error().Err(err).Str("redis", pusher.RedactURL(b.cfg.URL)).Msg("cluster: Redis unavailable; serving this node's sockets only, retrying")
	}
}

// receive reads the bus and this node's inbox. go-redis re-dials and re-subscribes after an
// error; each re-subscription means messages may have been missed and Redis may have lost this
// node's state, so presence is rebuilt.
func (b *Broker) receive(ps *goredis.PubSub) {
	defer b.wg.Done()
	defer ps.Close()
	subscribed := false
	backoff := 100 * time.Millisecond
	for b.ctx.Err() == nil {
		if !subscribed {
			if err := ps.Subscribe(b.ctx, b.bus(), b.inbox(b.id)); err != nil {
				b.setHealth(err)
				b.sleep(&backoff)
				continue
			}
			subscribed = true
		}
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			b.listening.Store(false)
			b.setHealth(err)
			b.sleep(&backoff)
			continue
		}
		backoff = 100 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.bus() {
				b.log.Debug().Msg("cluster: subscribed")
				b.listening.Store(true)
				b.requestResync()
			}
		case *goredis.Message:
			b.handle(m.Channel, m.Payload)
		}
	}
}

// spawn runs f on its own goroutine, counted in wg so Close waits for it. Only the broker's own
// goroutines call it, while wg is above zero, which is what WaitGroup.Add requires during a Wait.
func (b *Broker) spawn(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

func (b *Broker) sleep(d *time.Duration) {
	select {
	case <-b.ctx.Done():
	case <-time.After(*d):
	}
	*d = min(*d*2, 5*time.Second)
}

// Wire format on the bus: "B<node>\n<body>" for a broadcast, "Q<node>\n<id>\n<body>" for a
// question; answers go to the asker's inbox as "A<id>\n<body>".
func (b *Broker) handle(channel, payload string) {
	if len(payload) < 2 {
		return
	}
	kind, rest := payload[0], payload[1:]
	switch kind {
	case 'B':
		from, body, ok := strings.Cut(rest, "\n")
		if ok && from != b.id {
			b.node.Deliver([]byte(body))
		}
	case 'Q':
		from, rest, ok := strings.Cut(rest, "\n")
		id, body, ok2 := strings.Cut(rest, "\n")
		if ok && ok2 && from != b.id {
			// Answered off the receive loop, so deliveries never wait on a reply's round trip.
			b.spawn(func() {
				ans := b.node.Answer([]byte(body))
				ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
				defer cancel()
				if err := b.rdb.Publish(ctx, b.inbox(from), "A"+id+"\n"+string(ans)).Err(); err != nil {
					b.setHealth(err)
				}
			})
		}
	case 'A':
		id, body, ok := strings.Cut(rest, "\n")
		if !ok {
			return
		}
		if ch, found := b.pending.Load(id); found {
			select {
			case ch.(chan []byte) <- []byte(body):
			default:
			}
		}
	}
	_ = channel
}

// Broadcast implements pusher.Broker.
func (b *Broker) Broadcast(msg []byte) {
	b.enqueue(outbound{channel: b.bus(), payload: "B" + b.id + "\n" + string(msg), at: time.Now().UnixNano()})
}

func (b *Broker) enqueue(o outbound) {
	select {
	case b.queue <- o:
	default:
		b.drop(1, "publish queue full")
	}
}

// drop counts n messages for other nodes lost, logging at most every 10 s.
func (b *Broker) drop(n int, reason string) {
	total := b.dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	last := b.dropLogged.Load()
	if now-last < int64(10*time.Second) || !b.dropLogged.CompareAndSwap(last, now) {
		return
	}
	b.log.Error().Str("reason", reason).Int("messages", n).Uint64("dropped_total", total).Msg("cluster: messages for other nodes dropped")
}

// Queued is how many messages for other nodes wait to be published (while Redis is down, those
// kept for its return).
func (b *Broker) Queued() int { return int(b.backlog.Load()) + len(b.queue) }

// publisher drains the queue in pipelined batches: one round trip for everything waiting, in
// order, so one goroutine keeps up with bursts. While Redis is unreachable it keeps what arrives
// (up to OutageQueue messages, none older than OutageMaxAge) and, once Redis is back and the
// nodes that were listening have subscribed again, sends it in order: a short outage delays
// messages instead of losing them.
func (b *Broker) publisher() {
	defer b.wg.Done()
	var backlog []outbound // oldest first
	var receivers int64    // bus subscribers (this node included) at the last successful publish
	down := false
	backoff := 100 * time.Millisecond
	take := func(o outbound) {
		backlog = append(backlog, o)
		if down {
			backlog = b.trim(backlog)
		}
		b.backlog.Store(int64(len(backlog)))
	}
	for {
		if len(backlog) == 0 {
			select {
			case <-b.ctx.Done():
				return
			case o := <-b.queue:
				take(o)
			}
		}
	fill:
		for {
			select {
			case o := <-b.queue:
				take(o)
			default:
				break fill
			}
		}
		if down {
			if b.ping() != nil {
				select {
				case <-b.ctx.Done():
					return
				case <-time.After(backoff):
				case o := <-b.queue:
					take(o) // keep draining, so a Broadcast never finds the queue full during an outage
				}
				backoff = min(backoff*2, time.Second)
				continue
			}
			b.awaitListeners(receivers)
			down, backoff = false, 100*time.Millisecond
			backlog = b.trim(backlog)
			if len(backlog) == 0 {
				b.backlog.Store(0)
				continue
			}
		}
		batch := backlog[:min(len(backlog), 256)]
		sent, n, err := b.publishBatch(batch)
		if sent == len(batch) && n > 0 {
			receivers = n
		}
		// Shift rather than reslice, so the backlog's array does not grow without bound.
		backlog = backlog[:copy(backlog, backlog[sent:])]
		b.backlog.Store(int64(len(backlog)))
		if err != nil {
			b.setHealth(err)
			down = true
		}
	}
}

// trim drops what the outage bounds no longer allow: messages older than OutageMaxAge, then the
// oldest beyond OutageQueue.
func (b *Broker) trim(backlog []outbound) []outbound {
	cutoff := time.Now().Add(-b.cfg.OutageMaxAge).UnixNano()
	stale := 0
	for stale < len(backlog) && backlog[stale].at < cutoff {
		stale++
	}
	if stale > 0 {
		b.drop(stale, fmt.Sprintf("Redis unreachable for more than %s", b.cfg.OutageMaxAge))
	}
	over := len(backlog) - stale - b.cfg.OutageQueue
	if over > 0 {
		b.drop(over, fmt.Sprintf("more than %d messages waiting for Redis", b.cfg.OutageQueue))
		stale += over
	}
	if stale == 0 {
		return backlog
	}
	n := copy(backlog, backlog[stale:])
	clear(backlog[n:])
	return backlog[:n]
}

// publishBatch sends batch in one pipeline; it returns how many were published (a prefix of the
// batch) and the bus's subscriber count as the last PUBLISH reported it.
func (b *Broker) publishBatch(batch []outbound) (sent int, receivers int64, err error) {
	// Bounded, so a Redis that vanished mid-batch is noticed in seconds, not after the client's
	// pool and retry timeouts add up.
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.IntCmd, len(batch))
	for i, o := range batch {
		cmds[i] = pipe.Publish(ctx, o.channel, o.payload)
	}
	_, err = pipe.Exec(ctx)
	for sent < len(cmds) && cmds[sent].Err() == nil {
		receivers = cmds[sent].Val()
		sent++
	}
	return sent, receivers, err
}

// listenerGrace bounds how long a publisher back from an outage waits for the other nodes to
// subscribe again: longer than a receiver's longest retry pause (5 s), so a node that is coming
// back is waited for and one that is gone delays the backlog only this much.
const listenerGrace = 8 * time.Second

// awaitListeners waits until as many nodes listen on the bus as before the outage. Redis pub/sub
// keeps nothing for a node that is not subscribed: the backlog sent before the other nodes
// re-subscribed would be lost after all.
func (b *Broker) awaitListeners(want int64) {
	if want <= 0 {
		return
	}
	deadline := time.Now().Add(listenerGrace)
	for b.ctx.Err() == nil && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		n, err := b.rdb.PubSubNumSub(ctx, b.bus()).Result()
		cancel()
		if err == nil && n[b.bus()] >= want {
			return
		}
		select {
		case <-b.ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping checks a Redis that was down before sending a batch into it, so an outage does not make
// each batch wait out the timeouts.
func (b *Broker) ping() error {
	ctx, cancel := context.WithTimeout(b.ctx, 500*time.Millisecond)
	defer cancel()
	err := b.rdb.Ping(ctx).Err()
	if err == nil {
		b.setHealth(nil)
	}
	return err
}

// Ask implements pusher.Broker. PUBLISH answers how many subscribers got the question, which is
// exactly the number of nodes listening, so the wait ends as soon as all of them answered.
func (b *Broker) Ask(ctx context.Context, question []byte) ([][]byte, error) {
	if err := b.Healthy(); err != nil {
		return nil, err
	}
	id := strconv.FormatUint(b.askSeq.Add(1), 10)
	replies := make(chan []byte, 64)
	b.pending.Store(id, replies)
	defer b.pending.Delete(id)
	n, err := b.rdb.Publish(ctx, b.bus(), "Q"+b.id+"\n"+id+"\n"+string(question)).Result()
	if err != nil {
		b.setHealth(err)
		return nil, err
	}
	want := int(n) - 1 // every node but this one
	out := make([][]byte, 0, max(want, 0))
	for len(out) < want {
		select {
		case r := <-replies:
			out = append(out, r)
		case <-ctx.Done():
			return out, fmt.Errorf("%d of %d nodes answered: %w", len(out), want, ctx.Err())
		}
	}
	return out, nil
}

func (b *Broker) presenceKeys(m pusher.Membership) []string {
	return []string{
		b.channelKey("pn", m.App, m.Channel),
		b.channelKey("pc", m.App, m.Channel),
		b.channelKey("pm", m.App, m.Channel),
		b.key("nm", b.id),
	}
}

func entry(m pusher.Membership) string { return m.App + "\x00" + m.Channel + "\x00" + m.User }

// Join implements pusher.Broker. When it fails (Redis unreachable, or a blip: one heartbeat that
// timed out marks the broker unhealthy until the next), what this node holds and what Redis holds
// differ from then on: a rebuild is due, which the next heartbeat that reaches Redis starts (and
// Leave likewise). Without it a member who joined during a blip stayed unknown to the other nodes
// until the next reconnect.
func (b *Broker) Join(ctx context.Context, m pusher.Membership) (bool, error) {
	if err := b.Healthy(); err != nil {
		b.resyncDue.Store(true)
		return false, err
	}
	info := m.Info
	if len(info) == 0 {
		info = []byte("null")
	}
	n, err := joinScript.Run(ctx, b.rdb, b.presenceKeys(m), b.id+"\x00"+m.User, m.User, info, entry(m)).Int()
	if err != nil {
		b.setHealth(err)
		b.resyncDue.Store(true)
	}
	return n == 1, err
}

// Leave implements pusher.Broker.
func (b *Broker) Leave(ctx context.Context, m pusher.Membership) (bool, error) {
	if err := b.Healthy(); err != nil {
		b.resyncDue.Store(true)
		return false, err
	}
	n, err := leaveScript.Run(ctx, b.rdb, b.presenceKeys(m), b.id+"\x00"+m.User, m.User, entry(m)).Int()
	if err != nil {
		b.setHealth(err)
		b.resyncDue.Store(true)
	}
	if n == -1 {
		return false, pusher.ErrNotHeld
	}
	return n == 1, err
}

// Members implements pusher.Broker.
func (b *Broker) Members(ctx context.Context, app, channel string) ([]pusher.Member, error) {
	if err := b.Healthy(); err != nil {
		return nil, err
	}
	h, err := b.rdb.HGetAll(ctx, b.channelKey("pm", app, channel)).Result()
	if err != nil {
		b.setHealth(err)
		return nil, err
	}
	out := make([]pusher.Member, 0, len(h))
	for id, info := range h {
		out = append(out, pusher.Member{ID: id, Info: []byte(info)})
	}
	return out, nil
}

// Present implements pusher.Broker.
func (b *Broker) Present(ctx context.Context, app, channel string, users []string) ([]bool, error) {
	if err := b.Healthy(); err != nil {
		return nil, err
	}
	vals, err := b.rdb.HMGet(ctx, b.channelKey("pm", app, channel), users...).Result()
	if err != nil {
		b.setHealth(err)
		return nil, err
	}
	out := make([]bool, len(users))
	for i, v := range vals {
		out[i] = v != nil
	}
	return out, nil
}

// SetCache implements pusher.Broker.
func (b *Broker) SetCache(ctx context.Context, app, channel string, event []byte, ttl time.Duration) error {
	if err := b.Healthy(); err != nil {
		return err
	}
	err := b.rdb.Set(ctx, b.channelKey("cache", app, channel), event, ttl).Err()
	if err != nil {
		b.setHealth(err)
	}
	return err
}

// Cache implements pusher.Broker.
func (b *Broker) Cache(ctx context.Context, app, channel string) ([]byte, time.Duration, bool, error) {
	if err := b.Healthy(); err != nil {
		return nil, 0, false, err
	}
	pipe := b.rdb.Pipeline()
	get := pipe.Get(ctx, b.channelKey("cache", app, channel))
	ttl := pipe.PTTL(ctx, b.channelKey("cache", app, channel))
	if _, err := pipe.Exec(ctx); err != nil {
		if errors.Is(err, goredis.Nil) {
			return nil, 0, false, nil
		}
		b.setHealth(err)
		return nil, 0, false, err
	}
	return []byte(get.Val()), ttl.Val(), true, nil
}

// RemoteConnections implements pusher.Broker.
func (b *Broker) RemoteConnections(app string) int64 { return (*b.remote.Load())[app] }
