package proxy

import (
	"bufio"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// pool holds one php-fpm upstream's connections. They are kept alive (FCGI_KEEP_CONN) and
// carry one request at a time.
//
// A kept connection pins a php-fpm worker: the worker serves that connection until it closes.
// A connection opened while every worker is pinned waits in php-fpm's accept queue until one of
// the kept ones closes; a pool that kept all of its connections then would leave that request
// waiting until it times out (what Nginx with "keepalive" above pm.max_children does). And a
// pool that dials a connection per waiting request ends up closing one per request (Nginx's
// default), paying a dial, an accept and a worker switch each time.
//
// So the pool learns how many connections php-fpm serves at once (learned: the most connections
// seen busy with a worker answering at the same time) and opens no more than that: requests
// beyond it wait for a connection to come back, first come first served, and every connection
// stays kept. To find workers php-fpm added (pm=dynamic and pm=ondemand spawn them when none is
// idle, a reload may raise pm.max_children), the pool dials one probe connection beyond the
// limit when requests wait: a probe answered while all the others are busy raises the limit (and
// the next probes go out at once, twice as many each time); a probe that had to queue costs one
// connection closed and delays the next probe by probeInterval.
//
// Nothing may stall behind a limit learned too high (php-fpm restarted with fewer workers, or a
// second client of the same pool holding some): a connection still waiting for its first
// response byte after another connection finished a whole request begun after it was dialed is
// taken to be queued, and that other connection is closed instead of kept, handing its worker
// over, and the limit drops to the connections that were served. A connection about to go idle
// while one waits is closed the same way. php-fpm accepts in arrival order, and which
// connection a freed worker takes is its business: the pool only counts that there are as many
// workers handed over as connections waiting (a connection answered uses up one handover), so
// one closed connection per waiting one, never a cascade, and none left without. A fresh
// connection whose script is only slow to send its first byte looks the same from here: it
// costs one connection closed and one step of the limit, which a later probe takes back. (A
// worker handed over but taken by another client of the same php-fpm pool is not noticed: the
// connection it was meant for then waits for a worker of its own, at most the read timeout.)
//
// With max_conns (fastcgi://…?max_conns=N) N is an explicit cap and nothing is learned: the
// pool never opens more than N connections and keeps every one of them under any load.
type pool struct {
	mu       sync.Mutex
	idle     []*fcgiConn
	open     int // idle + busy + dialing
	pending  int // dialed connections still waiting for their first response byte
	maxConns int // explicit cap; 0: learn it
	waiters  []chan grant
	closed   bool
	stop     chan struct{}
	dials    atomic.Int64 // connections ever dialed, for tests

	// Without max_conns (see above).
	learned    int          // connections php-fpm served at once; 0 until the first answer
	queued     []*fcgiConn  // pending connections, oldest first
	handed     int          // workers handed over (connections closed) not yet used up by one of queued
	probing    int          // probes dialed and not yet answered
	probeSlots int          // probes allowed at once (0 means 1): doubles while they find workers
	nextProbe  time.Time    // no probe before (after one that found no worker)
	handovers  atomic.Int64 // connections closed to hand their worker to a queued one, for tests
}

// size is how many connections the pool works with: max_conns, or what it learned (0 until
// php-fpm first answered). The authorization lane is a share of it (authlane.go).
func (u *fcgiUpstream) size() int {
	if u.maxConns > 0 {
		return u.maxConns
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.learned
}

// probeInterval spaces probes that find no new worker: each costs one kept connection. php-fpm's
// pm=dynamic adds workers once a second.
const probeInterval = 500 * time.Millisecond

// grant is what a waiter gets: a connection, or (nil) a slot to dial, a probe or not.
type grant struct {
	c     *fcgiConn
	probe bool
}

var errPoolWait = poolTimeout{}

// readerPool recycles the connections' read buffers.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fcgiReadBuffer) }}

// poolTimeout is a request that waited ReadTimeout for a connection: php-fpm answered none of
// the requests ahead of it in that time.
type poolTimeout struct{}

func (poolTimeout) Error() string {
	return "fastcgi: no connection to php-fpm free within the read timeout"
}
func (poolTimeout) Timeout() bool   { return true }
func (poolTimeout) Temporary() bool { return true }

// get returns an idle connection that is still open, or dials one, or waits for one. replayable
// says the request can go again whole if a kept connection turns out closed: then a connection
// used within the last second skips the liveness syscall.
func (u *fcgiUpstream) get(replayable bool) (*fcgiConn, error) {
	u.mu.Lock()
	for {
		if n := len(u.idle); n > 0 {
			c := u.idle[n-1]
			u.idle[n-1] = nil
			u.idle = u.idle[:n-1]
			u.mu.Unlock()
			now := time.Now()
			idle := now.Sub(c.lastUsed)
			if idle < fcgiIdleTimeout && (replayable && idle < time.Second || alive(c.nc)) {
				c.reused = true
				c.started = now
				return c, nil
			}
			c.discard()
			u.mu.Lock()
			continue
		}
		if ok, probe := u.mayDial(); ok {
			u.reserve(probe)
			u.mu.Unlock()
			return u.dial(probe)
		}
		ch := make(chan grant, 1)
		u.waiters = append(u.waiters, ch)
		u.mu.Unlock()
		return u.wait(ch)
	}
}

// mayDial reports whether one more connection may be opened, and whether it is a probe beyond
// the learned limit. Called with mu held.
func (u *pool) mayDial() (ok, probe bool) {
	switch {
	case u.maxConns > 0:
		return u.open < u.maxConns, false
	case u.learned == 0 || u.open < u.learned:
		return true, false
	case u.probing < max(u.probeSlots, 1) && u.open < u.learned+max(u.probeSlots, 1) && !time.Now().Before(u.nextProbe):
		return true, true
	}
	return false, false
}

// reserve counts a connection about to be dialed. Called with mu held.
func (u *pool) reserve(probe bool) {
	u.open++
	u.pending++
	if probe {
		u.probing++
	}
}

// wait takes a connection handed over by put, or a slot to dial granted by release. Without
// max_conns it looks again every probeInterval: a probe may be due while every connection is
// held by a long request (a stream) and nothing else would wake the line.
func (u *fcgiUpstream) wait(ch chan grant) (*fcgiConn, error) {
	deadline := time.Now().Add(u.cfg.ReadTimeout)
	step := u.cfg.ReadTimeout
	if u.maxConns == 0 {
		step = min(step, probeInterval)
	}
	t := time.NewTimer(step)
	defer t.Stop()
	for {
		select {
		case g := <-ch:
			return u.granted(g)
		case <-t.C:
		}
		left := time.Until(deadline)
		u.mu.Lock()
		i := slices.Index(u.waiters, ch)
		if i < 0 {
			u.mu.Unlock()
			return u.granted(<-ch) // handed over just as the timer fired
		}
		if left <= 0 {
			u.waiters = slices.Delete(u.waiters, i, i+1)
			u.mu.Unlock()
			return nil, errPoolWait
		}
		if ok, probe := u.mayDial(); ok && !u.closed {
			u.waiters = slices.Delete(u.waiters, i, i+1)
			u.reserve(probe)
			u.mu.Unlock()
			return u.dial(probe)
		}
		u.mu.Unlock()
		t.Reset(min(step, left))
	}
}

func (u *fcgiUpstream) granted(g grant) (*fcgiConn, error) {
	if c := g.c; c != nil {
		c.reused = true
		c.started = time.Now()
		return c, nil
	}
	return u.dial(g.probe) // the granter counted it in open, pending (and probing)
}

// dial opens a connection already counted in open and pending (and probing for a probe).
func (u *fcgiUpstream) dial(probe bool) (*fcgiConn, error) {
	u.dials.Add(1)
	nc, err := net.DialTimeout(u.network, u.addr, u.cfg.ConnectTimeout)
	if err != nil {
		u.mu.Lock()
		u.pending--
		if probe {
			u.probing--
		}
		u.release()
		u.mu.Unlock()
		return nil, err
	}
	now := time.Now()
	c := &fcgiConn{u: u, nc: nc, fresh: true, probe: probe, started: now, wdl: lazyDeadline{d: u.cfg.WriteTimeout}}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&timeoutReader{nc: nc, rdl: lazyDeadline{d: u.cfg.ReadTimeout}})
	if u.maxConns == 0 {
		u.mu.Lock()
		c.queued = true
		u.queued = append(u.queued, c)
		u.mu.Unlock()
	}
	return c, nil
}

// release forgets one open connection and lets the first waiter dial in its place when the
// limit allows. Called with mu held.
func (u *pool) release() {
	u.open--
	u.grantDials()
}

// grantDials hands waiters the slots to dial that the limit allows. Called with mu held.
func (u *pool) grantDials() {
	for len(u.waiters) > 0 && !u.closed {
		ok, probe := u.mayDial()
		if !ok {
			return
		}
		w := u.waiters[0]
		u.waiters = u.waiters[1:]
		u.reserve(probe)
		w <- grant{probe: probe}
	}
}

// unqueue removes c from the queued connections. Called with mu held.
func (u *pool) unqueue(c *fcgiConn) {
	if !c.queued {
		return
	}
	c.queued = false
	if i := slices.Index(u.queued, c); i >= 0 {
		u.queued = slices.Delete(u.queued, i, i+1)
	}
	u.handed = min(u.handed, len(u.queued))
}

// probeFailed delays the next probe: php-fpm had no worker for the last one. Called with mu held.
func (u *pool) probeFailed() {
	u.probeSlots = 1
	u.nextProbe = time.Now().Add(probeInterval)
}

// settle ends the connection's "waiting for a worker" state: the first response byte arrived.
// Without max_conns this is where the limit is learned: the connections busy with an answering
// worker now are connections php-fpm serves at once.
func (c *fcgiConn) settle() {
	if !c.fresh {
		return
	}
	c.fresh = false
	u := c.u
	u.mu.Lock()
	u.pending--
	if u.maxConns == 0 {
		if c.queued && u.handed > 0 {
			u.handed-- // (or a worker php-fpm added: then one handover too many later, no stall)
		}
		u.unqueue(c)
		served := u.open - u.pending - len(u.idle)
		grew := served > u.learned
		if grew {
			u.learned = served
		}
		if c.probe {
			c.probe = false
			u.probing--
			if grew {
				u.probeSlots = min(2*max(u.probeSlots, 1), 64)
				u.nextProbe = time.Time{}
			} else {
				u.probeFailed()
			}
		}
		if grew {
			u.grantDials()
		}
	}
	u.mu.Unlock()
}

// put keeps a connection whose request completed: to the first waiter, to the idle list, or
// closed to hand its worker to a queued connection (see pool).
func (c *fcgiConn) put() {
	c.settle()
	u := c.u
	c.reqID = ""
	c.lastUsed = time.Now()
	u.mu.Lock()
	if u.closed || len(u.idle) >= fcgiMaxIdle || c.br.Buffered() > 0 {
		u.mu.Unlock()
		c.discard()
		return
	}
	if len(u.queued) > u.handed {
		q := u.queued[u.handed] // the oldest no handover covers
		if len(u.waiters) == 0 || q.started.Before(c.started) {
			// q waited while c served a whole request: php-fpm serves the others, not q.
			u.learned = max(1, min(u.learned, u.open-len(u.queued)+u.handed))
			u.handed++
			if q.probe {
				u.probeFailed()
			}
			u.mu.Unlock()
			u.handovers.Add(1)
			c.discard()
			return
		}
	}
	if len(u.waiters) > 0 {
		w := u.waiters[0]
		u.waiters = u.waiters[1:]
		u.mu.Unlock()
		w <- grant{c: c}
		return
	}
	u.idle = append(u.idle, c)
	u.mu.Unlock()
}

// discard closes a connection left in an unknown state (once; later calls do nothing).
func (c *fcgiConn) discard() {
	if c.dead {
		return
	}
	c.dead = true
	c.nc.Close()
	// The read buffer goes back for the next dial: under saturation (see pool) that is one per
	// request. Nothing reads a discarded connection again; nil makes sure of it.
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br, c.r.br = nil, nil
	u := c.u
	u.mu.Lock()
	if c.fresh {
		c.fresh = false
		u.pending--
		u.unqueue(c)
		if c.probe {
			c.probe = false
			u.probing--
		}
	}
	u.release()
	u.mu.Unlock()
}

// close drops the idle connections and stops the reaper.
func (u *fcgiUpstream) close() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	if !u.closed {
		u.closed = true
		close(u.stop)
	}
	u.mu.Unlock()
	for _, c := range idle {
		c.discard()
	}
}

// reap closes connections idle longer than fcgiIdleTimeout, giving their workers back.
func (u *fcgiUpstream) reap() {
	t := time.NewTicker(fcgiIdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			u.mu.Lock()
			keep := u.idle[:0]
			var stale []*fcgiConn
			for _, c := range u.idle {
				if now.Sub(c.lastUsed) > fcgiIdleTimeout {
					stale = append(stale, c)
				} else {
					keep = append(keep, c)
				}
			}
			clear(u.idle[len(keep):])
			u.idle = keep
			u.mu.Unlock()
			for _, c := range stale {
				c.discard()
			}
		}
	}
}

var _ net.Error = poolTimeout{}
