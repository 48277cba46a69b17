//go:build darwin || freebsd

package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal (progress lines are for people, not for logs).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TIOCGETA)
	return err == nil
}

// totalMemoryMB is the machine's RAM (sysctl hw.physmem).
func totalMemoryMB() int64 {
	n, err := unix.SysctlUint64("hw.physmem")
	if err != nil {
		return 0
	}
	return int64(n >> 20)
}
