package pebbletest

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// A closed port refuses connections, and no listener can take it while the test runs.
func TestClosedPort(t *testing.T) {
	port := ClosedPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("connection accepted on a closed port")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want connection refused", err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatal("another listener took the closed port")
	}
}
