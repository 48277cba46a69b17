//go:build !portable

package ws

import (
	"errors"
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The epoll driver's socket IO on the raw fd: non-blocking writev from the flusher pool, blocking
// writev through the runtime poller for a full socket, and reads that hold no buffer while they
// wait. io_portable.go has the same functions over net.Conn.

// rawConn is the fd under a TCP conn, which the driver reads and writes directly; nil for
// other conns (TLS, pipes), which go through net.Conn.
func rawConn(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// worker is one flusher's reusable state: the frames of the conn being written and their iovecs.
type worker struct {
	bufs [][]byte
	iov  []unix.Iovec
	n    int
	err  error
	try  func(fd uintptr) bool
}

func newWorker(n int) *worker {
	w := &worker{bufs: make([][]byte, 0, n), iov: make([]unix.Iovec, 0, n)}
	w.try = w.writevOnce // bound once: RawConn.Write takes a func, and a fresh closure per flush would allocate
	return w
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
		clear(w.bufs) // the previous pass's frames, so the caller clears only the last pass's
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

// writeWaiting writes bufs, waiting for the socket as needed, and returns what is left unwritten
// (on an error). On the raw fd, writev parks in the runtime poller on EAGAIN.
func (c *Conn) writeWaiting(bufs [][]byte) ([][]byte, error) {
	if c.rc == nil {
		return writeBuffers(c.nc, bufs)
	}
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
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
	return bufs, err
}

// read waits for bytes and returns them in a pooled buffer. On TCP it waits in the runtime
// poller with no buffer (RawConn.Read calls back when the fd is readable), so an idle conn holds
// only its goroutine; other conns (TLS) read through net.Conn with a pooled buffer.
func (c *Conn) read() (*[]byte, int, error) {
	if c.rc == nil {
		return c.readBuffered()
	}
	var (
		bp   *[]byte
		n    int
		rerr error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		if bp == nil {
			bp = readBufs.Get().(*[]byte)
		}
		m, e := unix.Read(int(fd), *bp)
		for e == unix.EINTR {
			m, e = unix.Read(int(fd), *bp)
		}
		if e == unix.EAGAIN {
			readBufs.Put(bp)
			bp = nil
			return false // park in the poller without a buffer
		}
		n, rerr = m, e
		if e == nil && m == 0 {
			rerr = io.EOF
		}
		if n < 0 {
			n = 0
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return bp, n, err
}

// readNow is TLSBase.Read once the conn is adopted: one non-blocking read, errWouldBlock on
// EAGAIN.
func (b *TLSBase) readNow(p []byte) (int, error) {
	var n int
	var e error
	if err := b.rc.Read(func(fd uintptr) bool {
		n, e = unix.Read(int(fd), p)
		for e == unix.EINTR {
			n, e = unix.Read(int(fd), p)
		}
		return true
	}); err != nil {
		return 0, err
	}
	switch {
	case e == unix.EAGAIN:
		return 0, errWouldBlock
	case e != nil:
		return 0, e
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// errWouldBlock is a timeout-like net.Error: crypto/tls treats it as temporary.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "ws: no bytes ready" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock error = wouldBlock{}

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
