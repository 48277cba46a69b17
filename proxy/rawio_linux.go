//go:build linux && !portable

package proxy

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIOConn reads and writes an upstream TCP connection with raw read(2) and write(2) on its
// non-blocking socket, waiting through the runtime's poller as net.Conn does (same deadlines,
// same Close). What it saves is the runtime's system-call bookkeeping: every net.Conn call is
// entered as a system call that may block, and a loopback write, which runs the receiver's TCP
// stack before it returns, often outlasts sysmon's 20 µs tick. sysmon then hands the P of the
// writing thread to another thread (a futex wake-up and a context switch, then another when
// the writer comes back without a P), and while it finds such Ps it keeps waking every 20 µs
// itself (a nanosleep each time). On the 2-core bench box with the HTTP upstream benchmark
// this was about a tenth of the process's CPU (pprof: runtime.sysmon). A non-blocking socket
// call never blocks: it returns EAGAIN and the poller waits, so nothing is lost by not telling
// the runtime. The call holds its P while the kernel copies, which the socket buffer bounds.
type rawIOConn struct {
	*net.TCPConn
	rc syscall.RawConn
	// One Read and one Write may run at once (fasthttp interrupts a stream from another
	// goroutine with Close, never with a second Read): each has its own state, and its
	// callback bound once so that a call allocates nothing.
	rp, wp          []byte
	rn, wn          int
	rerr, werr      error
	readFn, writeFn func(fd uintptr) bool
}

// rawIO wraps a TCP connection; anything else is returned as it is.
func rawIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIOConn{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeAll
	return r
}

// readOnce reads what is there; false (wait for the poller) on EAGAIN.
func (r *rawIOConn) readOnce(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rp[0])), uintptr(len(r.rp)))
		switch e {
		case 0:
			if r.rn = int(n); n == 0 {
				r.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.rerr = e
		return true
	}
}

// writeAll writes what is left of wp; false (wait for the poller) when the socket is full.
func (r *rawIOConn) writeAll(fd uintptr) bool {
	for r.wn < len(r.wp) {
		p := r.wp[r.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = e
			return true
		}
	}
	return true
}

// Read implements net.Conn.
func (r *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	r.rp = nil
	if err == nil {
		err = r.rerr
	}
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
	}
	return r.rn, err
}

// Write implements net.Conn.
func (r *rawIOConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wp, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	r.wp = nil
	if err == nil {
		err = r.werr
	}
	if err != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
	}
	return r.wn, err
}
