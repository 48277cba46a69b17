package pusher

import (
	"sync"
	"sync/atomic"
)

// appCounters are one app's counters, atomics so the socket paths only add.
type appCounters struct {
	messagesIn    atomic.Uint64
	bytesIn       atomic.Uint64
	messagesOut   atomic.Uint64 // deliveries: one per recipient, added once per publish
	bytesOut      atomic.Uint64 // frame bytes queued to recipients, added once per publish
	clientEvents  atomic.Uint64
	apiEvents     atomic.Uint64
	subscriptions atomic.Int64
}

// serverCounters are the rarer events, counted by label under a mutex.
type serverCounters struct {
	mu       sync.Mutex
	api      map[APIRequestKey]uint64
	refusals map[string]uint64
	kicks    map[string]uint64
}

// APIRequestKey labels an HTTP API request count.
type APIRequestKey struct {
	Endpoint string // events, batch_events, channels, channel, channel_users, connections, terminate_connections, unknown
	Status   int
}

func (c *serverCounters) apiRequest(endpoint string, status int) {
	c.mu.Lock()
	if c.api == nil {
		c.api = map[APIRequestKey]uint64{}
	}
	c.api[APIRequestKey{endpoint, status}]++
	c.mu.Unlock()
}

func (c *serverCounters) refused(reason string) {
	c.mu.Lock()
	if c.refusals == nil {
		c.refusals = map[string]uint64{}
	}
	c.refusals[reason]++
	c.mu.Unlock()
}

func (c *serverCounters) kicked(reason string) {
	c.mu.Lock()
	if c.kicks == nil {
		c.kicks = map[string]uint64{}
	}
	c.kicks[reason]++
	c.mu.Unlock()
}

// Stats is a snapshot for Prometheus, read at scrape time so no metric sits on a hot path.
type Stats struct {
	Apps        map[string]AppStats // by app id
	APIRequests map[APIRequestKey]uint64
	Refused     map[string]uint64 // refused inputs by reason
	Kicked      map[string]uint64 // sockets the server closed, by reason (slow_consumer, pong_timeout, ...)
}

// AppStats is one app's share of Stats.
type AppStats struct {
	Connections   int64
	Channels      int64
	Subscriptions int64
	MessagesIn    uint64
	BytesIn       uint64
	MessagesOut   uint64
	BytesOut      uint64
	ClientEvents  uint64
	APIEvents     uint64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	out := Stats{Apps: map[string]AppStats{}, APIRequests: map[APIRequestKey]uint64{}, Refused: map[string]uint64{}, Kicked: map[string]uint64{}}
	for _, a := range s.appList() {
		var channels int64
		for i := range a.hub.shards {
			sh := &a.hub.shards[i]
			sh.mu.RLock()
			channels += int64(len(sh.channels))
			sh.mu.RUnlock()
		}
		out.Apps[a.config().ID] = AppStats{
			Connections:   a.conns.Load(),
			Channels:      channels,
			Subscriptions: a.stats.subscriptions.Load(),
			MessagesIn:    a.stats.messagesIn.Load(),
			BytesIn:       a.stats.bytesIn.Load(),
			MessagesOut:   a.stats.messagesOut.Load(),
			BytesOut:      a.stats.bytesOut.Load(),
			ClientEvents:  a.stats.clientEvents.Load(),
			APIEvents:     a.stats.apiEvents.Load(),
		}
	}
	s.stats.mu.Lock()
	for k, v := range s.stats.api {
		out.APIRequests[k] = v
	}
	for k, v := range s.stats.refusals {
		out.Refused[k] = v
	}
	for k, v := range s.stats.kicks {
		out.Kicked[k] = v
	}
	s.stats.mu.Unlock()
	return out
}
