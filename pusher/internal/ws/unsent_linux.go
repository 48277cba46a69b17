package ws

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytes is how many bytes the kernel still holds for the socket that the client has not
// acknowledged (SIOCOUTQ).
func unsentBytes(rc syscall.RawConn) int {
	unsent := 0
	_ = rc.Control(func(fd uintptr) { unsent, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
	return unsent
}
