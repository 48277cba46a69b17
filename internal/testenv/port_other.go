//go:build !linux

package testenv

import (
	"net"
	"testing"
)

// ReserveAddr returns a free loopback address. Off Linux the port is not held: another process
// may take it before the child binds it.
func ReserveAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
