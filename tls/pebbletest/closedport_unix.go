//go:build unix

package pebbletest

import (
	"syscall"
	"testing"
)

// ClosedPort returns a TCP port on 127.0.0.1 where connections are refused until the test ends:
// a socket is bound to it but never listens, so no other listener can take the port meanwhile.
// Pointing Pebble's validation there proves the other challenge type alone.
func ClosedPort(t testing.TB) int {
	t.Helper()
	syscall.ForkLock.RLock() // no child forked meanwhile inherits the socket
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
