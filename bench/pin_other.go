//go:build !linux

package bench

import "errors"

// pinning is empty where CPU affinity is not set (pin_linux.go).
type pinning struct{}

// pin needs Linux's sched_setaffinity.
func pin([]int) (*pinning, error) {
	return nil, errors.New("pin: CPU pinning needs Linux (sched_setaffinity)")
}

func (*pinning) unpin() {}
