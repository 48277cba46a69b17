package ws

import "syscall"

// setRcvBuf sets SO_RCVBUF on a socket before it connects (the window scale is fixed then).
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
