package proxy

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Reconnect storms paced to what PHP can take.
//
// When a node restarts or dies, every WebSocket client reconnects and authorizes each of its
// private and presence channels again through /broadcasting/auth (and signs in again through
// /broadcasting/user-auth): thousands of PHP requests at once, queued in front of the page
// requests behind the same php-fpm pool. So authorizations get a lane of their own: at most
// AuthLaneShare of the pool's connections (half by default, never all of them when there are
// two or more) run an authorization at a time, and the rest of the pool is always there for
// pages. The pool's size is max_conns, or else what the pool has learned php-fpm serves at once
// (fastcgi_pool.go), read at each authorization: the lane follows php-fpm's size as the pool
// learns it, and stays open until the pool has learned anything. Authorizations beyond the lane wait in a bounded FIFO for
// AuthQueueTimeout at most, then get 503 with Retry-After; pusher-js reports the subscription
// as failed and the app may retry, where an unbounded queue would have timed out every page.
//
// The lane also measures how long an authorization holds its slot, which gives PHP's capacity
// in authorizations per second (slots / latency): pusher.Server.Shutdown spreads its 4200
// closes over the time PHP needs to re-authorize everyone (cmd/frontdoor wires the two).

// authPath reports the paths Laravel's Broadcast::routes() and Broadcast::userRoutes() register.
func authPath(p string) bool {
	return p == "/broadcasting/auth" || p == "/broadcasting/user-auth"
}

// defaultAuthLatency is assumed for the capacity before any authorization was measured.
const defaultAuthLatency = 50 * time.Millisecond

// authLane bounds the authorizations one php-fpm pool runs at once.
type authLane struct {
	size    func() int // the pool's connections: max_conns or learned; 0 while unknown
	share   float64
	queue   int
	timeout time.Duration

	mu      sync.Mutex
	active  int
	waiters []chan struct{} // FIFO; release hands a slot over with a send

	refused atomic.Int64
	latency atomic.Int64 // moving average of the time a slot was held, ns; 0 before the first
}

// newAuthLane makes the lane of a pool whose size says how many connections it has (see
// authLane.size); nil when the lane is off.
func newAuthLane(size func() int, cfg Config) *authLane {
	if cfg.AuthLaneShare <= 0 {
		return nil
	}
	return &authLane{size: size, share: cfg.AuthLaneShare, queue: cfg.AuthQueue, timeout: cfg.AuthQueueTimeout}
}

// noLimit is the lane's width while the pool's size is unknown.
const noLimit = math.MaxInt32

// slots is how many authorizations may run at once for a pool of n connections (0: unknown).
func (l *authLane) slots() int {
	n := l.size()
	if n <= 0 {
		return noLimit
	}
	slots := max(1, int(math.Floor(float64(n)*l.share)))
	if n >= 2 {
		slots = min(slots, n-1) // pages always keep one connection at least
	}
	return slots
}

// laneFull is an authorization refused because the lane and its queue are full or the wait
// ran out; retryAfter is the seconds the backlog needs to drain at the measured rate.
type laneFull struct{ retryAfter int }

func (laneFull) Error() string {
	return "authorization lane full: too many /broadcasting/auth requests waiting for PHP"
}

// acquire takes a slot, waiting in line for at most the queue timeout.
func (l *authLane) acquire() error {
	l.mu.Lock()
	if l.active < l.slots() && len(l.waiters) == 0 {
		l.active++
		l.mu.Unlock()
		return nil
	}
	if len(l.waiters) >= l.queue {
		ra := l.retryAfterLocked()
		l.mu.Unlock()
		l.refused.Add(1)
		return laneFull{ra}
	}
	ch := make(chan struct{}, 1)
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
	}
	l.mu.Lock()
	for i, w := range l.waiters {
		if w == ch {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			ra := l.retryAfterLocked()
			l.mu.Unlock()
			l.refused.Add(1)
			return laneFull{ra}
		}
	}
	l.mu.Unlock()
	<-ch // handed a slot just as the timer fired
	return nil
}

// release gives the slot to the first waiter, or back, and folds the time it was held into the
// latency average (weight 1/8, as TCP's SRTT).
func (l *authLane) release(held time.Duration) {
	for {
		old := l.latency.Load()
		next := int64(held)
		if old != 0 {
			next = old + (int64(held)-old)/8
		}
		if l.latency.CompareAndSwap(old, next) {
			break
		}
	}
	l.mu.Lock()
	if len(l.waiters) > 0 {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.mu.Unlock()
		w <- struct{}{}
		return
	}
	l.active--
	l.mu.Unlock()
}

// perSecond is the authorizations per second the lane can answer at the measured latency.
func (l *authLane) perSecond() float64 {
	lat := time.Duration(l.latency.Load())
	if lat <= 0 {
		lat = defaultAuthLatency
	}
	slots := l.slots()
	if slots == noLimit {
		return 0 // the pool's size is not known yet
	}
	return float64(slots) / lat.Seconds()
}

// retryAfterLocked: whole seconds for the current backlog to drain, at least 1. Called with mu held.
func (l *authLane) retryAfterLocked() int {
	ps := l.perSecond()
	if ps <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(float64(len(l.waiters)+l.active)/ps)))
}

// AuthLaneStats is the state of the authorization lanes of all php-fpm pools, summed.
type AuthLaneStats struct {
	Slots   int   `json:"slots"`   // authorizations that may run at once
	Active  int   `json:"active"`  // running now
	Waiting int   `json:"waiting"` // queued for a slot: the backlog
	Refused int64 `json:"refused"` // answered 503 (queue full or waited too long), ever
	// PerSecond is the authorizations per second PHP is estimated to answer (slots / measured latency).
	PerSecond float64 `json:"per_second"`
}

// AuthLane reports the authorization lanes; Slots is 0 when there is none (no php-fpm pool,
// or AuthLaneShare off) and counts nothing for a pool whose size is not known yet.
func (h *Handler) AuthLane() AuthLaneStats {
	var st AuthLaneStats
	for _, u := range h.upstreams {
		f, ok := u.(*fcgiUpstream)
		if !ok || f.lane == nil {
			continue
		}
		l := f.lane
		if slots := l.slots(); slots != noLimit {
			st.Slots += slots
		}
		l.mu.Lock()
		st.Active += l.active
		st.Waiting += len(l.waiters)
		l.mu.Unlock()
		st.Refused += l.refused.Load()
		st.PerSecond += l.perSecond()
	}
	return st
}

// AuthCapacity is the channel authorizations per second PHP is estimated to answer, for pacing
// reconnects; 0 when unknown (no lane, or no pool size learned yet).
func (h *Handler) AuthCapacity() float64 { return h.AuthLane().PerSecond }

func (r laneFull) header() string { return strconv.Itoa(r.retryAfter) }
