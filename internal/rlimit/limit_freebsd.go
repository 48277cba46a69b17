package rlimit

// limit converts to FreeBSD's signed Rlimit fields (RLIM_INFINITY is the largest int64).
func limit(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
