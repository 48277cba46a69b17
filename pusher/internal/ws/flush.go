package ws

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// Flusher drives the conns adopted with it: a fixed pool of workers that write dirty conns
// (docs/architecture.md "Coalescing, non-blocking delivery"), each pass writing all of one conn's
// pending frames with one writev and never waiting on a socket, and the epoll pollers that read
// them (poller_linux.go). Under the portable driver (poller_portable.go) the workers hand each
// dirty conn to a blocking writer and every conn has a read goroutine. It owns every goroutine it
// starts; Stop ends them all.
type Flusher struct {
	work chan *Conn
	wg   sync.WaitGroup // workers and poller waiters

	// mu orders schedule and pollerFor against Stop: they hold it shared, so Stop never closes
	// work under a send. Uncontended read locks are one atomic add.
	mu      sync.RWMutex
	stopped bool

	// OnPollError, when set before the first Adopt, hears of an epoll_wait failure (the
	// poller's conns are closed and new ones get read goroutines).
	OnPollError func(error)

	pollState // the read driver's: poller_linux.go, or poller_portable.go
}

// iovMax bounds the frames one write takes: Linux's IOV_MAX, the most buffers one writev takes.
const iovMax = 1024

// NewFlusher starts workers goroutines (GOMAXPROCS when workers ≤ 0).
func NewFlusher(workers int) *Flusher {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := newFlusher(64 << 10)
	for range workers {
		f.wg.Add(1)
		go f.worker()
	}
	return f
}

// newFlusher is a Flusher with room for backlog dirty conns and no workers yet.
func newFlusher(backlog int) *Flusher {
	return &Flusher{work: make(chan *Conn, backlog), pollState: newPollState()}
}

// Stop ends every goroutine the Flusher started: the workers once the conns already handed to
// them are written, the pollers, and the parked serving goroutines. Conns still in a poller are
// closed (call Stop after closing them to close them gracefully); conns that become dirty after
// Stop write on their own short-lived goroutines, and conns adopted after it get read goroutines.
func (f *Flusher) Stop() {
	f.noMorePollers()
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	close(f.work)
	pollers := f.wakePollers()
	f.mu.Unlock()
	f.wg.Wait()
	f.endPollers(pollers)
}

func (f *Flusher) schedule(c *Conn) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.stopped {
		go c.writeBlocking()
		return
	}
	select {
	case f.work <- c:
	default:
		// Every worker is busy and the backlog is full: this conn waits on its own goroutine
		// rather than the publisher waiting for a worker.
		go c.writeBlocking()
	}
}

func (f *Flusher) worker() {
	defer f.wg.Done()
	w := newWorker(iovMax)
	for c := range f.work {
		c.flushOnce(w)
		// Pin no frame between flushes. flushOnce clears each pass's frames before the next
		// take, so what is left is the last pass's: clearing all iovMax slots (24 KiB of
		// pointers) cost more per connection than the write it followed.
		clear(w.bufs)
		w.bufs = w.bufs[:0]
	}
}

// spareWorkers lends flushNow a worker's buffers.
var spareWorkers = sync.Pool{New: func() any { return newWorker(16) }}

// flushNow writes what is queued on the caller's goroutine, unless a writer already has the conn
// (or it is closed). A partial write continues on a blocking writer as with the pool.
func (c *Conn) flushNow() {
	c.mu.Lock()
	if c.scheduled || c.closed {
		c.mu.Unlock()
		return
	}
	c.scheduled = true
	c.mu.Unlock()
	w := spareWorkers.Get().(*worker)
	c.flushOnce(w)
	clear(w.bufs)
	w.bufs = w.bufs[:0]
	spareWorkers.Put(w)
}

// endPass ends a readiness pass (or Adopt's first write): what the handler queued during it (the
// replies to the client's messages, above all) is written here, on the pass's goroutine, in one
// writev, instead of being handed to a flusher goroutine frame by frame. Frames other goroutines
// queued meanwhile wait for this too: at most the rest of a pass, which never waits on the
// network.
func (c *Conn) endPass() {
	c.mu.Lock()
	c.inPass = false
	write := len(c.queue) > 0 && !c.scheduled && !c.closed
	c.mu.Unlock()
	if write {
		c.flushNow()
	}
}

// take moves up to iovMax queued frames into bufs.
func (c *Conn) take(bufs [][]byte) [][]byte {
	n := min(len(c.queue), iovMax)
	bufs = append(bufs, c.queue[:n]...)
	c.preface = false // it was the head: taken now, and given back at the head if unwritten
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		// An idle conn keeps no grown backing array and pins no frame.
		c.queue = nil
		c.qbuf = [2][]byte{}
	}
	return bufs
}

// giveBack puts frames not yet written back at the head of the queue.
func (c *Conn) giveBack(rest [][]byte) {
	if len(rest) == 0 {
		return
	}
	q := make([][]byte, 0, len(rest)+len(c.queue))
	c.queue = append(append(q, rest...), c.queue...)
}

// writeBlocking drains the conn on its own goroutine, waiting for the socket as needed. It ends
// when the queue is empty; the next Send schedules the conn on the pool again.
func (c *Conn) writeBlocking() {
	var bufs [][]byte
	for {
		c.mu.Lock()
		if c.closed {
			c.scheduled = false
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.done()
			return
		}
		if c.closing {
			_ = c.nc.SetWriteDeadline(time.Now().Add(closeLinger))
		}
		bufs = c.take(bufs[:0])
		c.mu.Unlock()

		var err error
		bufs, err = c.writeWaiting(bufs)
		c.mu.Lock()
		c.giveBack(bufs)
		c.recount()
		c.mu.Unlock()
		if err != nil {
			c.finish(CloseAbnormal, "write failed")
			return
		}
	}
}

// done is called with c.mu held and an empty queue: the conn leaves the writers, and a closing
// conn closes its write side now that the close frame is out.
func (c *Conn) done() {
	c.scheduled = false
	closing := c.closing
	c.mu.Unlock()
	if closing {
		c.closeWritten()
	}
}

// closeWritten runs once the close frame is on the wire: half-close so the client reads it and
// answers, and bound the wait for that answer.
func (c *Conn) closeWritten() {
	c.mu.Lock()
	answered := c.peerClose
	c.mu.Unlock()
	if answered {
		// The client closed first and our echo is out: the handshake is complete.
		c.finish(CloseAbnormal, "closed")
		return
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	time.AfterFunc(closeLinger, func() { c.finish(CloseAbnormal, "no close reply") })
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
}

// writeBuffers writes bufs to nc, waiting as needed, and returns what is left unwritten.
// net.Buffers.WriteTo consumes its own slice headers, never the frames.
func writeBuffers(nc net.Conn, bufs [][]byte) ([][]byte, error) {
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(nc)
	return nb, err
}

// recount recomputes queued bytes after a blocking write (the slow path, rarely taken).
func (c *Conn) recount() {
	t := 0
	for _, b := range c.queue {
		t += len(b)
	}
	c.queued = t
}
