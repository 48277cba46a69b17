//go:build unix && !freebsd

package rlimit

func limit(v uint64) uint64 { return v }
