package ws

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Flusher drives the conns adopted with it: a fixed pool of workers that write dirty conns
// (docs/architecture.md "Coalescing, non-blocking delivery"), each pass writing all of one conn's
// pending frames with one writev and never waiting on a socket, and the epoll pollers that read
// them (poller.go). It owns every goroutine it starts; Stop ends them all.
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

	pollOnce sync.Once
	pollers  []*poller
	serveQ   chan servePass // unbuffered: a send succeeds only when a server is parked
	quit     chan struct{}  // closed by Stop: parked servers exit
	servers  sync.WaitGroup // serving goroutines
	parked   atomic.Int32

	epollWait func(epfd int, events []unix.EpollEvent, msec int) (int, error) // tests inject failures
}

// iovMax is Linux's IOV_MAX: the most buffers one writev takes.
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
	return &Flusher{work: make(chan *Conn, backlog), serveQ: make(chan servePass), quit: make(chan struct{}),
		epollWait: unix.EpollWait}
}

// Stop ends every goroutine the Flusher started: the workers once the conns already handed to
// them are written, the pollers, and the parked serving goroutines. Conns still in a poller are
// closed (call Stop after closing them to close them gracefully); conns that become dirty after
// Stop write on their own short-lived goroutines, and conns adopted after it get read goroutines.
func (f *Flusher) Stop() {
	f.pollOnce.Do(func() {}) // no pollers start after this
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	close(f.work)
	pollers := f.pollers
	for _, p := range pollers {
		_, _ = unix.Write(p.wake, binary.NativeEndian.AppendUint64(nil, 1)) // an eventfd takes a uint64
	}
	f.mu.Unlock()
	f.wg.Wait()
	close(f.quit)
	f.servers.Wait()
	for _, p := range pollers {
		p.closeAll()
	}
	f.mu.Lock()
	f.closePollers()
	f.mu.Unlock()
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
		clear(w.bufs[:cap(w.bufs)]) // pin no frame between flushes
		w.bufs = w.bufs[:0]
	}
}

// worker is one flusher's reusable state: the frames of the conn being written and their iovecs.
type worker struct {
	bufs [][]byte
	iov  []unix.Iovec
	n    int
	err  error
	try  func(fd uintptr) bool
}

// spareWorkers lends flushNow a worker's buffers.
var spareWorkers = sync.Pool{New: func() any { return newWorker(16) }}

func newWorker(n int) *worker {
	w := &worker{bufs: make([][]byte, 0, n), iov: make([]unix.Iovec, 0, n)}
	w.try = w.writevOnce // bound once: RawConn.Write takes a func, and a fresh closure per flush would allocate
	return w
}

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
	clear(w.bufs[:cap(w.bufs)])
	w.bufs = w.bufs[:0]
	spareWorkers.Put(w)
}

// writevOnce makes one writev attempt with w.bufs and returns true, so RawConn.Write never parks
// the flusher on a full socket. It builds the iovecs itself (unix.Writev allocates above 8).
func (w *worker) writevOnce(fd uintptr) bool {
	iov := w.iov[:0]
	for _, b := range w.bufs {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	w.iov = iov
	w.n, w.err = 0, nil
	if len(iov) == 0 {
		return true
	}
	r, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	for e == unix.EINTR {
		r, _, e = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	}
	clear(iov) // drop the pointers into frames
	if e != 0 {
		w.err = e
		return true
	}
	w.n = int(r)
	return true
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

// flushOnce writes what the conn has queued with single non-blocking writev calls. A conn whose
// socket buffer fills moves to writeBlocking; a conn that is not TCP (TLS) always writes there.
func (c *Conn) flushOnce(w *worker) {
	if c.rc == nil {
		go c.writeBlocking()
		return
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.scheduled = false
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.done() // unlocks
			return
		}
		w.bufs = c.take(w.bufs[:0])
		c.mu.Unlock()

		err := c.rc.Write(w.try)
		if err == nil {
			err = w.err
		}
		n := w.n
		rest := advance(w.bufs, n)
		c.mu.Lock()
		c.queued -= n
		c.giveBack(rest)
		c.mu.Unlock()
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				go c.writeBlocking()
				return
			}
			c.finish(CloseAbnormal, "write failed")
			return
		}
		if len(rest) > 0 { // partial write: the socket buffer is full
			go c.writeBlocking()
			return
		}
	}
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
		if c.rc != nil {
			var werr error
			err = c.rc.Write(func(fd uintptr) bool {
				for {
					m, e := unix.Writev(int(fd), bufs)
					if e == unix.EINTR {
						continue
					}
					if m > 0 {
						bufs = advance(bufs, m)
					}
					switch {
					case len(bufs) == 0:
						return true
					case e == unix.EAGAIN:
						return false // park in the poller until the socket is writable
					case e != nil:
						werr = e
						return true
					}
				}
			})
			if err == nil {
				err = werr
			}
		} else {
			// net.Buffers.WriteTo consumes nb (its own slice headers, never the frames).
			nb := net.Buffers(bufs)
			_, err = nb.WriteTo(c.nc)
			bufs = nb
		}
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

// advance drops the first n bytes from bufs without modifying any frame (frames are shared).
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
			continue
		}
		bufs[0] = bufs[0][n:]
		n = 0
	}
	return bufs
}

// recount recomputes queued bytes after a blocking write (the slow path, rarely taken).
func (c *Conn) recount() {
	t := 0
	for _, b := range c.queue {
		t += len(b)
	}
	c.queued = t
}
