package testenv

import (
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ReserveAddr returns a loopback address for a child process that binds with SO_REUSEPORT, as
// frontdoor does, reserved until the test ends: the port stays bound (SO_REUSEPORT, not
// listening), so no other process can take it between now and the child's bind. A bound socket
// that does not listen receives no connections.
func ReserveAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}
