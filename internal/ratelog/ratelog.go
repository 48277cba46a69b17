// Package ratelog bounds log lines that a client can cause. A refused handshake, a malformed
// request or an exhausted descriptor table is worth one line per interval on an internet-facing
// server, not one per occurrence: a flood of bad input must not become a flood of log. The lines
// not written are counted and reported with the next one written.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter allows one line per interval; the zero value is not usable, use New.
type Limiter struct {
	every int64        // nanoseconds
	last  atomic.Int64 // unix nanoseconds of the last allowed line
	quiet atomic.Uint64
}

// New returns a limiter that allows one line per every.
func New(every time.Duration) *Limiter { return &Limiter{every: int64(every), last: atomic.Int64{}} }

// Allow reports whether a line may be written now, and how many were suppressed since the last
// one that was. Lock-free: safe on hot paths and from any goroutine.
func (l *Limiter) Allow() (suppressed uint64, ok bool) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if (last != 0 && now-last < l.every) || !l.last.CompareAndSwap(last, now) {
		l.quiet.Add(1)
		return 0, false
	}
	return l.quiet.Swap(0), true
}
