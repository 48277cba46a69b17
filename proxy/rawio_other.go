//go:build !linux || portable

package proxy

import "net"

// rawIO is Linux's system-call saving for upstream connections (rawio_linux.go); elsewhere,
// and with -tags portable, connections go through net.Conn as they are.
func rawIO(c net.Conn) net.Conn { return c }
