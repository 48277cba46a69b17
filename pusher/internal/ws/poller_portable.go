//go:build !linux || portable

package ws

import "sync"

// The portable read driver, for systems without epoll (macOS, Windows, FreeBSD) and for Linux
// builds with the "portable" tag, which run the same tests against it: every conn gets one read
// goroutine (readLoop) that waits in the Go runtime's poller (kqueue, IOCP, ...). An idle conn
// costs that goroutine's stack, a few KB, instead of nothing; fine for development, which is
// what these platforms are supported for.

// EpollDriver reports which read driver this build has; see poller_linux.go.
const EpollDriver = false

// poller is the epoll driver's; the portable driver has none.
type poller struct{}

// connPoll is a Conn's portable driver state (its read goroutine holds the Parser).
type connPoll struct {
	tracked bool // in its Flusher's readers, for Stop to close; under Conn.mu
}

// polled is false: no conn is served by a poller.
func (c *Conn) polled() bool { return false }

// pollState is the Flusher's read driver state: the conns it reads, so Stop can close them and
// their read goroutines end with it, as the epoll driver's serving goroutines do.
type pollState struct {
	readers sync.Map // *Conn → struct{}
}

func newPollState() pollState { return pollState{} }

func (f *Flusher) noMorePollers()         {}
func (f *Flusher) wakePollers() []*poller { return nil }

// endPollers closes the conns still read (their read goroutines then end).
func (f *Flusher) endPollers([]*poller) {
	f.readers.Range(func(k, _ any) bool {
		k.(*Conn).finish(CloseAbnormal, "connection lost")
		return true
	})
}

// startPolled registers c with its Flusher and returns false: every conn gets readLoop. A conn
// adopted after Stop is not registered (nothing would close it), as under the epoll driver, nor
// one a failed first write already closed. c.mu before f.mu, as in scheduleLocked.
func (c *Conn) startPolled([]byte) bool {
	c.mu.Lock()
	c.f.mu.RLock()
	if !c.f.stopped && !c.closed {
		c.f.readers.Store(c, struct{}{})
		c.tracked = true
	}
	c.f.mu.RUnlock()
	c.mu.Unlock()
	return false
}

// unpoll forgets a closing conn; c.mu is held.
func (c *Conn) unpoll() {
	if c.tracked {
		c.f.readers.Delete(c)
	}
}
