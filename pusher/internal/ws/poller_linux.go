//go:build !portable

package ws

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The epoll driver (docs/architecture.md "Idle sockets"): a TCP conn waiting for its client
// has no goroutine at all. Its fd sits in an epoll set with EPOLLONESHOT; when it turns readable,
// one server goroutine (see dispatch) reads until EAGAIN, feeds the conn's Parser (which keeps a
// partial frame's state in the Conn), runs the handler, re-arms the fd and moves on. One-shot arming means
// at most one goroutine serves a conn at a time, so the handler still sees one message after
// another; level triggering means bytes that arrive between the last read and the re-arm fire
// at once.
//
// The runtime's own poller also holds the fd (the conn is a net.TCPConn, whose writes still wait
// there on EAGAIN); an fd may sit in several epoll sets, and no goroutine waits on its read side
// in the runtime's, so that one's read events go unused.
//
// Events carry the conn's id, never its fd: an fd number is reused as soon as a conn closes, an
// id is not, so a late event for a closed conn finds nothing.
type poller struct {
	epfd   int
	wake   int      // eventfd in the set under wakeID: Stop writes it to end wait
	conns  sync.Map // id → *Conn
	failed atomic.Bool

	// The epoll fd as a file in the runtime's own poller (an epoll fd is readable while events
	// are ready in it), so that wait parks its goroutine there instead of blocking a thread in
	// epoll_wait. A thread blocked in a system call keeps its P in the syscall state; whenever
	// other goroutines are runnable, sysmon takes that P away after 20 µs (a futex wake-up to
	// start another thread), the returning thread has to find a P again, and sysmon keeps
	// waking every 20 µs while this goes on. Under connection churn that was three nanosleeps
	// per connect+subscribe+close cycle. rc is nil where the runtime cannot poll the file: then
	// wait blocks in epoll_wait.
	file    *os.File
	rc      syscall.RawConn
	waiting struct { // next's state, used by the poller's one waiter
		epollWait func(int, []unix.EpollEvent, int) (int, error)
		events    []unix.EpollEvent
		n         int
		err       error
		try       func(uintptr) bool
	}
}

// EpollDriver reports which read driver this build has: the epoll one (Linux without the
// portable build tag) or the portable one (poller_portable.go), so tests of the epoll driver's
// internals and idle-memory bounds can skip under the portable one.
const EpollDriver = true

// pollState is the Flusher's epoll driver state.
type pollState struct {
	pollOnce sync.Once
	pollers  []*poller
	serveQ   chan servePass // unbuffered: a send succeeds only when a server is parked
	quit     chan struct{}  // closed by Stop: parked servers exit
	servers  sync.WaitGroup // serving goroutines
	parked   atomic.Int32

	epollWait func(epfd int, events []unix.EpollEvent, msec int) (int, error) // tests inject failures
}

func newPollState() pollState {
	return pollState{serveQ: make(chan servePass), quit: make(chan struct{}), epollWait: epollWait}
}

// noMorePollers makes sure no poller starts after Stop.
func (f *Flusher) noMorePollers() { f.pollOnce.Do(func() {}) }

// wakePollers ends every poller's wait; f.mu is held. It returns them for endPollers.
func (f *Flusher) wakePollers() []*poller {
	for _, p := range f.pollers {
		_, _ = unix.Write(p.wake, binary.NativeEndian.AppendUint64(nil, 1)) // an eventfd takes a uint64
	}
	return f.pollers
}

// endPollers runs once the waiters have returned: the parked servers exit, the conns still in a
// poller are closed, and the epoll sets released.
func (f *Flusher) endPollers(pollers []*poller) {
	close(f.quit)
	f.servers.Wait()
	for _, p := range pollers {
		p.closeAll()
	}
	f.mu.Lock()
	f.closePollers()
	f.mu.Unlock()
}

// connPoll is a Conn's epoll driver state; unused by conns that have a read goroutine.
type connPoll struct {
	poller *poller
	pollID uint64
	armed  atomic.Bool
	parser Parser // a partial frame between readiness events
}

// polled reports whether c is served by a poller (tests).
func (c *Conn) polled() bool { return c.poller != nil }

// wakeID is the epoll data of a poller's eventfd; conn ids start at 1.
const wakeID = 0

var pollerSeq atomic.Uint64

// pollerFor returns a poller for a new conn, or nil when there is none to use (epoll unavailable,
// the Flusher stopped, or this poller failed): the conn then gets a read goroutine.
func (f *Flusher) pollerFor(id uint64) *poller {
	f.pollOnce.Do(f.startPollers)
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.stopped || len(f.pollers) == 0 {
		return nil
	}
	p := f.pollers[id%uint64(len(f.pollers))]
	if p.failed.Load() {
		return nil
	}
	return p
}

func (f *Flusher) startPollers() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	// One waiter per two cores: a waiter only dispatches, the work runs on the serving goroutines.
	for range max(1, runtime.GOMAXPROCS(0)/2) {
		p, err := newPoller()
		if err != nil {
			f.closePollers() // no epoll (a sandbox forbids it): every conn gets a read goroutine
			return
		}
		f.pollers = append(f.pollers, p)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.wait(p)
		}()
	}
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	p := &poller{epfd: epfd, wake: wake}
	if pollInRuntime && unix.SetNonblock(epfd, true) == nil { // os.NewFile registers only non-blocking fds
		p.file = os.NewFile(uintptr(epfd), "ws-epoll") // owns epfd from here on
		rc, err := p.file.SyscallConn()
		// A deadline is refused (ErrNoDeadline) exactly when the runtime does not poll the file.
		if err == nil && p.file.SetReadDeadline(time.Time{}) == nil {
			p.rc = rc
		}
	}
	return p, nil
}

// pollInRuntime is false only in tests of the blocking wait (the fallback).
var pollInRuntime = true

// next waits for readiness events and reads them into events.
func (p *poller) next(epollWait func(int, []unix.EpollEvent, int) (int, error), events []unix.EpollEvent) (int, error) {
	if p.rc == nil {
		return epollWait(p.epfd, events, -1)
	}
	w := &p.waiting
	if w.try == nil { // bound once: a closure per call would allocate at every wake-up
		w.try = func(uintptr) bool {
			w.n, w.err = w.epollWait(p.epfd, w.events, 0)
			return w.n > 0 || w.err != nil // nothing ready: park until the epoll fd turns readable
		}
	}
	w.epollWait, w.events = epollWait, events
	err := p.rc.Read(w.try)
	if err == nil {
		err = w.err
	}
	return w.n, err
}

// epollWait is epoll_wait(2); with msec 0 it cannot block, and is made without the runtime's
// system-call bookkeeping (see poller.file for what that costs).
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	if msec != 0 {
		return unix.EpollWait(epfd, events, msec)
	}
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// closePollers releases pollers whose waiters have ended (or never started); f.mu is held.
func (f *Flusher) closePollers() {
	for _, p := range f.pollers {
		if p.file != nil {
			p.file.Close() // leaves the runtime's poller (if in it), closes epfd
		} else {
			unix.Close(p.epfd)
		}
		unix.Close(p.wake)
	}
	f.pollers = nil
}

// wait dispatches readiness events until Stop wakes it. An epoll_wait error other than EINTR
// means the set is unusable (it cannot happen with a valid epfd): the poller is marked failed so
// new conns get read goroutines, its conns are closed (their clients reconnect), and the error
// goes to OnPollError.
func (f *Flusher) wait(p *poller) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := p.next(f.epollWait, events)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.failed.Store(true)
			if f.OnPollError != nil {
				f.OnPollError(err)
			}
			p.closeAll()
			return
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == wakeID {
				return
			}
			if v, ok := p.conns.Load(id); ok {
				f.dispatch(v.(*Conn), nil)
			}
		}
	}
}

// closeAll ends the conns a poller will no longer serve.
func (p *poller) closeAll() {
	p.conns.Range(func(_, v any) bool {
		v.(*Conn).finish(CloseAbnormal, "connection lost")
		return true
	})
}

// arm (re)enables one readiness event for c; op is EPOLL_CTL_ADD the first time, then MOD.
// It runs after every pass, so its RawConn callback is a pooled, pre-bound one (pollReader's).
func (p *poller) arm(c *Conn, op int) error {
	r := pollReaders.Get().(*pollReader)
	r.epfd, r.op = p.epfd, op
	r.ev = unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(c.pollID)),
		Pad:    int32(uint32(c.pollID >> 32)),
	}
	err := c.pollRC.Control(r.ctl)
	if err == nil {
		err = r.err
	}
	pollReaders.Put(r)
	return err
}

// startPolled hands c to a poller; false when there is none or c has no socket to watch (use a
// read goroutine instead).
func (c *Conn) startPolled(pending []byte) bool {
	if c.pollRC == nil {
		return false
	}
	id := pollerSeq.Add(1)
	p := c.f.pollerFor(id)
	if p == nil {
		return false
	}
	c.parser = Parser{MaxMessage: c.maxMsg}
	// Under c.mu, which finish holds while it unpolls: the first frames may already have failed
	// to write and closed the conn, and then it must not be registered (nor read).
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return true
	}
	c.poller, c.pollID = p, id
	p.conns.Store(id, c)
	c.mu.Unlock()
	if c.base != nil {
		c.base.nonBlock.Store(true)
	}
	if len(pending) == 0 && c.base == nil {
		// Nothing is buffered above the socket (TLS may hold decrypted records, fasthttp's reader
		// was drained into pending), so there is nothing to read yet: a Pusher client waits for
		// connection_established before it sends. Arm at once; level triggering fires for bytes
		// already waiting. This saves a read that would answer EAGAIN on every new connection.
		c.armed.Store(true)
		if err := p.arm(c, unix.EPOLL_CTL_ADD); err != nil {
			go c.finish(CloseAbnormal, "connection lost") // not here: the handler may wait for Adopt to return
		}
		return true
	}
	c.f.dispatch(c, pending) // the first pass adds the fd to the epoll set
	return true
}

// Readiness passes run on parked server goroutines when one is free, else on a new one that
// parks afterwards. A fresh goroutine per pass starts on the minimum stack and grows it, copying
// it each time, through the handler's JSON decoding: under connect/subscribe/close churn that was
// 12% of the server's CPU. A parked server keeps its grown stack (until a GC shrinks it).
// maxParked bounds the idle servers (and the stacks they keep) after a burst of passes.
const maxParked = 128

type servePass struct {
	c       *Conn
	pending []byte
}

func (f *Flusher) dispatch(c *Conn, pending []byte) {
	select {
	case f.serveQ <- servePass{c, pending}:
	default:
		f.servers.Add(1)
		go f.servePasses(c, pending)
	}
}

// servePasses serves a pass, then parks for the next one until Stop (or too many are parked).
func (f *Flusher) servePasses(c *Conn, pending []byte) {
	defer f.servers.Done()
	for {
		c.serve(pending)
		if f.parked.Add(1) > maxParked {
			f.parked.Add(-1)
			return
		}
		select {
		case p := <-f.serveQ:
			f.parked.Add(-1)
			c, pending = p.c, p.pending
		case <-f.quit:
			f.parked.Add(-1)
			return
		}
	}
}

// serve is one readiness pass: read and handle everything available, then re-arm.
func (c *Conn) serve(pending []byte) {
	first := c.armed.CompareAndSwap(false, true)
	c.mu.Lock()
	c.inPass = true
	c.mu.Unlock()
	if len(pending) > 0 {
		if err := c.parser.Feed(pending, c.emit); err != nil {
			c.endPass()
			c.failRead(err)
			return
		}
	}
	for {
		r, n, again := c.readNow()
		if n > 0 {
			c.touch()
			short := n < len(r.buf)
			perr := c.parser.Feed(r.buf[:n], c.emit)
			pollReaders.Put(r)
			if perr != nil {
				c.endPass() // failRead waits for its close frame to be written
				c.failRead(perr)
				return
			}
			if short && c.base == nil {
				// A short read emptied the socket's receive queue: re-arm instead of reading
				// once more for EAGAIN (half the read syscalls of a typical pass). Bytes that
				// arrived meanwhile fire the level-triggered event again at once. Not for TLS,
				// whose reads return one record at a time whatever is left below.
				break
			}
			continue
		}
		pollReaders.Put(r)
		if again {
			break
		}
		c.endPass()
		c.finish(CloseAbnormal, "connection lost")
		return
	}
	c.endPass()
	op := unix.EPOLL_CTL_MOD
	if first {
		op = unix.EPOLL_CTL_ADD
	}
	if err := c.poller.arm(c, op); err != nil {
		c.finish(CloseAbnormal, "connection lost")
	}
}

// pollReader is a read buffer lent for one readiness pass, with its RawConn callback bound once:
// a closure per read would allocate it and the variables it captures, on every inbound message.
type pollReader struct {
	buf []byte
	n   int
	err error
	try func(fd uintptr) bool

	// arm's epoll_ctl, through RawConn.Control the same way.
	epfd, op int
	ev       unix.EpollEvent
	ctl      func(fd uintptr)
}

func (r *pollReader) epollCtl(fd uintptr) { r.err = unix.EpollCtl(r.epfd, r.op, int(fd), &r.ev) }

// readOnce makes one non-blocking read and returns true, so RawConn.Read never parks the
// goroutine in the runtime's poller.
func (r *pollReader) readOnce(fd uintptr) bool {
	r.n, r.err = unix.Read(int(fd), r.buf)
	for r.err == unix.EINTR {
		r.n, r.err = unix.Read(int(fd), r.buf)
	}
	return true
}

var pollReaders = sync.Pool{New: func() any {
	r := &pollReader{buf: make([]byte, readBufSize)}
	r.try, r.ctl = r.readOnce, r.epollCtl
	return r
}}

// readNow makes one non-blocking read into a pooled reader (the caller returns it to
// pollReaders). again reports EAGAIN: nothing more until the next event; n == 0 without again is
// the end (EOF, an error, or the conn closed under us).
func (c *Conn) readNow() (r *pollReader, n int, again bool) {
	r = pollReaders.Get().(*pollReader)
	if c.base != nil {
		// Through TLS: the tls.Conn reads its TLSBase, which answers errWouldBlock instead of
		// waiting. Read returns buffered plaintext first, so "would block" means nothing is left.
		m, err := c.nc.Read(r.buf)
		if m > 0 {
			return r, m, false
		}
		return r, 0, errors.Is(err, errWouldBlock)
	}
	// RawConn.Read holds the fd against a concurrent Close for the call.
	if rerr := c.rc.Read(r.try); rerr != nil || r.err != nil && r.err != unix.EAGAIN {
		return r, 0, false
	}
	if r.err == unix.EAGAIN {
		return r, 0, true
	}
	return r, r.n, false
}

// unpoll forgets a closing conn; the kernel drops the fd from the epoll set when it closes.
func (c *Conn) unpoll() {
	if c.poller != nil {
		c.poller.conns.Delete(c.pollID)
	}
}
