//go:build unix

package rlimit

import "syscall"

// NoFile returns the soft and hard RLIMIT_NOFILE.
func NoFile() (cur, max uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	return uint64(lim.Cur), uint64(lim.Max), nil // int64 fields on FreeBSD
}

// SetNoFile sets the soft and hard RLIMIT_NOFILE (raising the hard one needs privileges).
func SetNoFile(cur, max uint64) error {
	var lim syscall.Rlimit
	lim.Cur, lim.Max = limit(cur), limit(max)
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
