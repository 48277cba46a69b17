package pusher

import "sync"

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
