package proxy

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pool holds one php-fpm upstream's connections. They are kept alive (FCGI_KEEP_CONN) and
// carry one request at a time.
//
// A kept connection pins a php-fpm worker: the worker serves that connection until it closes.
// A pool that keeps idle connections while a new connection sits in php-fpm's accept queue
// (all workers pinned) would leave that request waiting until it times out; that is what Nginx
// with "keepalive" above pm.max_children does. So while any freshly dialed connection is still
// waiting for its first response byte, finished connections are closed instead of kept, which
// hands their workers to the queue. Under saturation this degrades to a connection per request
// (Nginx's default) and never to a stall.
//
// With max_conns (fastcgi://…?max_conns=N, N = pm.max_children) the pool never opens more
// than N connections: requests beyond wait, first come first served, for a connection to come
// back, and every connection stays kept under any load (the closing rule above is off: N says
// how many php-fpm serves at once).
type pool struct {
	mu       sync.Mutex
	idle     []*fcgiConn
	open     int // idle + busy + dialing
	pending  int // dialed connections still waiting for their first response byte
	maxConns int // 0: no limit
	waiters  []chan *fcgiConn
	closed   bool
	stop     chan struct{}
	dials    atomic.Int64 // connections ever dialed, for tests
}

var errPoolWait = poolTimeout{}

// readerPool recycles the connections' read buffers.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fcgiReadBuffer) }}

// poolTimeout is a request that waited ReadTimeout for a connection under max_conns.
type poolTimeout struct{}

func (poolTimeout) Error() string {
	return "fastcgi: no connection free within the read timeout (max_conns)"
}
func (poolTimeout) Timeout() bool   { return true }
func (poolTimeout) Temporary() bool { return true }

// get returns an idle connection that is still open, or dials one, or under max_conns waits
// for one. replayable says the request can go again whole if a kept connection turns out
// closed: then a connection used within the last second skips the liveness syscall.
func (u *fcgiUpstream) get(replayable bool) (*fcgiConn, error) {
	u.mu.Lock()
	for {
		if n := len(u.idle); n > 0 {
			c := u.idle[n-1]
			u.idle[n-1] = nil
			u.idle = u.idle[:n-1]
			u.mu.Unlock()
			idle := time.Since(c.lastUsed)
			if idle < fcgiIdleTimeout && (replayable && idle < time.Second || alive(c.nc)) {
				c.reused = true
				return c, nil
			}
			c.discard()
			u.mu.Lock()
			continue
		}
		if u.maxConns == 0 || u.open < u.maxConns {
			u.open++
			u.pending++
			u.mu.Unlock()
			return u.dial()
		}
		ch := make(chan *fcgiConn, 1)
		u.waiters = append(u.waiters, ch)
		u.mu.Unlock()
		return u.wait(ch)
	}
}

// wait takes a connection handed over by put, or a slot to dial (nil) granted by discard.
func (u *fcgiUpstream) wait(ch chan *fcgiConn) (*fcgiConn, error) {
	t := time.NewTimer(u.cfg.ReadTimeout)
	defer t.Stop()
	select {
	case c := <-ch:
		return u.granted(c)
	case <-t.C:
	}
	u.mu.Lock()
	for i, w := range u.waiters {
		if w == ch {
			u.waiters = append(u.waiters[:i], u.waiters[i+1:]...)
			u.mu.Unlock()
			return nil, errPoolWait
		}
	}
	u.mu.Unlock()
	return u.granted(<-ch) // handed over just as the timer fired
}

func (u *fcgiUpstream) granted(c *fcgiConn) (*fcgiConn, error) {
	if c != nil {
		c.reused = true
		return c, nil
	}
	return u.dial() // the granter counted it in open and pending
}

// dial opens a connection already counted in open and pending.
func (u *fcgiUpstream) dial() (*fcgiConn, error) {
	u.dials.Add(1)
	nc, err := net.DialTimeout(u.network, u.addr, u.cfg.ConnectTimeout)
	if err != nil {
		u.mu.Lock()
		u.pending--
		u.release()
		u.mu.Unlock()
		return nil, err
	}
	c := &fcgiConn{u: u, nc: nc, fresh: true, wdl: lazyDeadline{d: u.cfg.WriteTimeout}}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&timeoutReader{nc: nc, rdl: lazyDeadline{d: u.cfg.ReadTimeout}})
	return c, nil
}

// release forgets one open connection and, under max_conns, lets the first waiter dial in its
// place. Called with mu held.
func (u *fcgiUpstream) release() {
	u.open--
	if len(u.waiters) > 0 && !u.closed {
		w := u.waiters[0]
		u.waiters = u.waiters[1:]
		u.open++
		u.pending++
		w <- nil
	}
}

// settle ends the connection's "waiting for a worker" state.
func (c *fcgiConn) settle() {
	if c.fresh {
		c.fresh = false
		c.u.mu.Lock()
		c.u.pending--
		c.u.mu.Unlock()
	}
}

// put keeps a connection whose request completed: to the first waiter, to the idle list, or
// closed (see pool).
func (c *fcgiConn) put() {
	c.settle()
	u := c.u
	c.reqID = ""
	c.lastUsed = time.Now()
	u.mu.Lock()
	if u.closed || u.maxConns == 0 && u.pending > 0 || len(u.idle) >= fcgiMaxIdle || c.br.Buffered() > 0 {
		u.mu.Unlock()
		c.discard()
		return
	}
	if len(u.waiters) > 0 {
		w := u.waiters[0]
		u.waiters = u.waiters[1:]
		u.mu.Unlock()
		w <- c
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
