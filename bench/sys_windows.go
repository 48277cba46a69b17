package bench

import (
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// selfCPU is the load generator's own CPU time (user+system, all threads).
func selfCPU() time.Duration {
	var creation, exit, kernel, user windows.Filetime
	if windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user) != nil {
		return 0
	}
	// Filetime counts 100 ns intervals.
	ticks := int64(kernel.HighDateTime)<<32 | int64(kernel.LowDateTime) + int64(user.HighDateTime)<<32 | int64(user.LowDateTime)
	return time.Duration(ticks * 100)
}

// isTerminal reports whether f is a console (progress lines are for people, not for logs).
func isTerminal(f *os.File) bool {
	var mode uint32
	return windows.GetConsoleMode(windows.Handle(f.Fd()), &mode) == nil
}

// totalMemoryMB is not reported on Windows.
func totalMemoryMB() int64 { return 0 }
