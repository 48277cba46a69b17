//go:build unix

package bench

import (
	"syscall"
	"time"
)

// selfCPU is the load generator's own CPU time (user+system, all threads).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
