//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: php-fpm closes kept connections
// when a worker exits (pm.max_requests, reload). A non-blocking peek sees that close without
// consuming anything.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK) // nothing to read: open and idle
		return true
	})
	return err == nil && open
}
