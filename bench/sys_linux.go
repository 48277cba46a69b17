package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal (progress lines are for people, not for logs).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// totalMemoryMB is the machine's RAM.
func totalMemoryMB() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit) >> 20
}
