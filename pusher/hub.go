package pusher

import (
	"sync"
	"sync/atomic"
	"time"
)

// numShards splits an app's channels so publishes and subscribes on different channels take
// different locks (docs/architecture.md "The Pusher core"). A power of two: the shard is hash & (numShards-1).
const numShards = 64

// Hub is one app's channels.
type Hub struct {
	shards [numShards]shard
	// count is the number of occupied channels, kept beside the shards so max_channels is one
	// atomic load rather than a walk over every shard.
	count atomic.Int64
}

type shard struct {
	mu       sync.RWMutex
	channels map[string]*Channel
	// cache holds the last API event of each cache channel, occupied or not (§5.6).
	cache map[string]cachedEvent
}

type cachedEvent struct {
	frame   []byte // the framed event, replayed as it was broadcast
	data    string // for GET /channels/{name}?info=cache
	expires time.Time
}

func newHub() *Hub {
	h := &Hub{}
	for i := range h.shards {
		h.shards[i].channels = map[string]*Channel{}
		h.shards[i].cache = map[string]cachedEvent{}
	}
	return h
}

// fnv1a picks a shard from a channel name without allocating.
func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (h *Hub) shard(name string) *shard { return &h.shards[fnv1a(name)&(numShards-1)] }

// Channel is one occupied channel: its subscribers and, for presence, its members.
type Channel struct {
	name string
	typ  channelType

	mu sync.RWMutex
	// subs maps each subscriber to whether it is still pending: a socket receives the channel's
	// events only once its subscription_succeeded is queued (§5.2), however long the presence
	// bookkeeping between the two takes on a cluster.
	subs    map[*Socket]bool
	members map[string]*member // presence: user id → member (§5.4)
}

// member is one presence user with the number of that user's sockets in the channel, so a user
// on two tabs joins once and leaves once (§5.4).
type member struct {
	info  []byte // user_info as JSON; "null" when absent
	count int
	// unannounced: the broker could not be told of the join (Redis was down), so the other
	// nodes have not heard of this member; Reconnected announces it.
	unannounced bool
}

// lookup returns the channel if occupied.
func (h *Hub) lookup(name string) *Channel {
	sh := h.shard(name)
	sh.mu.RLock()
	ch := sh.channels[name]
	sh.mu.RUnlock()
	return ch
}

// channelsSnapshot lists occupied channels; each shard is locked in turn, never all at once.
func (h *Hub) channelsSnapshot() []*Channel {
	var out []*Channel
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, ch := range sh.channels {
			out = append(out, ch)
		}
		sh.mu.RUnlock()
	}
	return out
}

// subscribeResult says what a subscribe changed, for the caller to announce.
type subscribeResult struct {
	already   bool // the socket was subscribed before (idempotent re-subscribe, §5.2)
	newMember bool // presence: the user's first socket in the channel
	occupied  bool // the channel went from empty to occupied
	subsAfter int
	limit     bool // presence member cap reached: refused
	full      bool // the app is at max_channels and this channel is not occupied: refused
	cached    []byte
}

// subscribe adds s to the channel, creating it when needed unless the app already has
// maxChannels (zero: no cap). For presence, userID and info describe the member. It sends
// nothing; the caller announces under no lock.
func (h *Hub) subscribe(name string, typ channelType, s *Socket, userID string, info []byte, maxMembers, maxChannels int) (subscribeResult, *Channel) {
	sh := h.shard(name)
	sh.mu.Lock()
	ch := sh.channels[name]
	var r subscribeResult
	if ch == nil {
		// Shards are locked one at a time, so two new channels may race past the cap together:
		// it is exceeded by at most the number of concurrent subscribes.
		if maxChannels > 0 && h.count.Load() >= int64(maxChannels) {
			sh.mu.Unlock()
			r.full = true
			return r, nil
		}
		h.count.Add(1)
		ch = &Channel{name: name, typ: typ, subs: map[*Socket]bool{}}
		if typ.kind == kindPresence {
			ch.members = map[string]*member{}
		}
		sh.channels[name] = ch
		r.occupied = true
	}
	if c, ok := sh.cache[name]; ok && time.Now().Before(c.expires) {
		r.cached = c.frame
	}
	ch.mu.Lock()
	sh.mu.Unlock()
	defer ch.mu.Unlock()
	if _, ok := ch.subs[s]; ok {
		r.already = true
		r.subsAfter = len(ch.subs)
		return r, ch
	}
	if ch.members != nil {
		m := ch.members[userID]
		if m == nil {
			if maxMembers > 0 && len(ch.members) >= maxMembers {
				r.limit = true
				if r.occupied && len(ch.subs) == 0 {
					h.dropIfEmpty(ch)
				}
				return r, ch
			}
			m = &member{info: info}
			ch.members[userID] = m
			r.newMember = true
		}
		m.count++
	}
	ch.subs[s] = true
	r.subsAfter = len(ch.subs)
	return r, ch
}

// dropIfEmpty removes a channel that has no subscribers; called with ch.mu held. It takes the
// shard lock after ch.mu would invert the lock order, so it defers the removal to a goroutine.
func (h *Hub) dropIfEmpty(ch *Channel) {
	go h.removeIfEmpty(ch)
}

func (h *Hub) removeIfEmpty(ch *Channel) {
	sh := h.shard(ch.name)
	sh.mu.Lock()
	ch.mu.RLock()
	if len(ch.subs) == 0 && sh.channels[ch.name] == ch {
		delete(sh.channels, ch.name)
		h.count.Add(-1)
	}
	ch.mu.RUnlock()
	sh.mu.Unlock()
}

// unsubscribeResult says what an unsubscribe changed.
type unsubscribeResult struct {
	was        bool
	lastMember bool // presence: the user's last socket left
	vacated    bool
	subsAfter  int
}

// unsubscribe removes s from the channel; for presence, userID is the member it joined as.
func (h *Hub) unsubscribe(name string, s *Socket, userID string) (unsubscribeResult, *Channel) {
	sh := h.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := sh.channels[name]
	var r unsubscribeResult
	if ch == nil {
		return r, nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if _, ok := ch.subs[s]; !ok {
		return r, ch
	}
	r.was = true
	delete(ch.subs, s)
	if ch.members != nil {
		if m := ch.members[userID]; m != nil {
			m.count--
			if m.count <= 0 {
				delete(ch.members, userID)
				r.lastMember = true
			}
		}
	}
	r.subsAfter = len(ch.subs)
	if len(ch.subs) == 0 {
		delete(sh.channels, name)
		h.count.Add(-1)
		r.vacated = true
	}
	return r, ch
}

// broadcast sends one prepared frame to every subscriber but except. Send never blocks, so the
// channel's read lock is held only for the loop; zero allocations per recipient.
// The frame is traced once for all recipients.
func (ch *Channel) broadcast(frame []byte, except *Socket) int {
	ch.mu.RLock()
	n := 0
	var last *Socket
	for s, pending := range ch.subs {
		if s != except && !pending {
			s.sendShared(frame)
			n++
			last = s
		}
	}
	ch.mu.RUnlock()
	if last != nil && last.srv.trace {
		last.srv.traceFanout(last.app, frame, n)
	}
	return n
}

// activate starts delivering the channel's events to s, after its subscription_succeeded.
func (ch *Channel) activate(s *Socket) {
	ch.mu.Lock()
	if _, ok := ch.subs[s]; ok {
		ch.subs[s] = false
	}
	ch.mu.Unlock()
}

// setCache remembers the last API event of a cache channel.
func (h *Hub) setCache(name string, frame []byte, data string, ttl time.Duration) {
	sh := h.shard(name)
	sh.mu.Lock()
	sh.cache[name] = cachedEvent{frame: frame, data: data, expires: time.Now().Add(ttl)}
	sh.mu.Unlock()
}

func (h *Hub) getCache(name string) (cachedEvent, bool) {
	sh := h.shard(name)
	sh.mu.RLock()
	c, ok := sh.cache[name]
	sh.mu.RUnlock()
	if !ok || time.Now().After(c.expires) {
		return cachedEvent{}, false
	}
	return c, true
}

// expireCache drops cache entries past their TTL; the janitor calls it.
func (h *Hub) expireCache(now time.Time) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for k, c := range sh.cache {
			if now.After(c.expires) {
				delete(sh.cache, k)
			}
		}
		sh.mu.Unlock()
	}
}

// presenceData returns {ids, hash, count} data for subscription_succeeded (§5.4).
func presenceData(members []Member) []byte {
	b := []byte(`{"presence":{"ids":[`)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, m.ID)
	}
	b = append(b, `],"hash":{`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, m.ID)
		b = append(b, ':')
		if len(m.Info) == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, m.Info...)
		}
	}
	b = append(b, `},"count":`...)
	b = appendInt(b, len(members))
	return append(b, `}}`...)
}

// memberList is this node's members of a presence channel.
func (ch *Channel) memberList() []Member {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	out := make([]Member, 0, len(ch.members))
	for id, m := range ch.members {
		out = append(out, Member{ID: id, Info: m.info})
	}
	return out
}

// setUnannounced records whether the other nodes missed this member's join.
func (ch *Channel) setUnannounced(id string, v bool) {
	ch.mu.Lock()
	if m := ch.members[id]; m != nil {
		m.unannounced = v
	}
	ch.mu.Unlock()
}

func (ch *Channel) unannounced(id string) bool {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	m := ch.members[id]
	return m != nil && m.unannounced
}

func (ch *Channel) hasMember(id string) bool {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	return ch.members[id] != nil
}

func (ch *Channel) counts() (subs, users int) {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	return len(ch.subs), len(ch.members)
}
