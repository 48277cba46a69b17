package tls

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReusePort reports whether Listen sets SO_REUSEPORT with Linux's semantics (a second process
// binds the same address and the kernel spreads new connections over both), which the
// zero-downtime binary upgrade needs.
const ReusePort = true

// listenConfig sets SO_REUSEPORT and TCP keepalive (Go's defaults: first probe after 15 s idle,
// then every 15 s, 9 probes) once on the listening socket, which Linux copies to every accepted
// one, instead of by Go with four setsockopt calls per accepted connection: a tenth of the
// server's syscalls in a connect/subscribe/close cycle.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveSeconds),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveSeconds),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9),
			)
		})
		return errors.Join(err, serr)
	}}
}
