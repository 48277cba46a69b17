package tls

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Two listeners on one port: what lets a new process start beside the old one.
func TestListenReusePort(t *testing.T) {
	a, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen(a.Addr().String())
	if err != nil {
		t.Fatalf("second bind: %v", err)
	}
	b.Close()

	// Accepted sockets inherit the listener's keepalive settings (Go sets none per conn).
	go func() {
		if c, err := net.Dial("tcp", a.Addr().String()); err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	c, err := a.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle, intvl int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		var e1, e2, e3 error
		on, e1 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, e2 = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl, e3 = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		gerr = errors.Join(e1, e2, e3)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if on != 1 || idle != keepAliveSeconds || intvl != keepAliveSeconds {
		t.Errorf("accepted socket: SO_KEEPALIVE %d, TCP_KEEPIDLE %d, TCP_KEEPINTVL %d; want 1, %d, %d", on, idle, intvl, keepAliveSeconds, keepAliveSeconds)
	}

}
