// Package ratelog bounds log lines that a client (or a chatty child process, or a library in a
// retry loop) can cause. A refused handshake, a malformed request or an exhausted descriptor
// table is worth a few lines on an internet-facing server, not one per occurrence: a flood of
// bad input must not become a flood of log. The lines not written are counted and reported with
// the next one written, so nothing is lost but the repetition.
package ratelog

import (
	"sync"
	"time"
)

// Limiter is a token bucket for log lines: burst lines at once, then one per every.
type Limiter struct {
	burst float64
	every time.Duration

	mu     sync.Mutex
	tokens float64
	last   time.Time
	quiet  uint64
}

// New returns a limiter that lets burst lines through at once and then one per every.
func New(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), every: every, tokens: float64(burst)}
}

// Allow reports whether a line may be written now, and how many were suppressed since the last
// one that was.
func (l *Limiter) Allow() (suppressed uint64, ok bool) { return l.AllowAt(time.Now()) }

// AllowAt is Allow at a given time (tests, and callers that already read the clock).
func (l *Limiter) AllowAt(now time.Time) (suppressed uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+float64(now.Sub(l.last))/float64(l.every))
	}
	l.last = now
	if l.tokens < 1 {
		l.quiet++
		return 0, false
	}
	l.tokens--
	suppressed, l.quiet = l.quiet, 0
	return suppressed, true
}

// Flush returns the lines suppressed since the last one allowed and forgets them (for a final
// "N lines suppressed" when the source ends).
func (l *Limiter) Flush() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.quiet
	l.quiet = 0
	return n
}

// Keyed is one Limiter per key (a refusal reason), so a flood of one kind does not hide another.
type Keyed struct {
	burst   int
	every   time.Duration
	maxKeys int

	mu sync.Mutex
	m  map[string]*Limiter
}

// NewKeyed returns per-key limiters like New's. Keys are meant to be constants in the code;
// past maxKeys, new keys share one limiter, so a bug that made keys from client input could not
// grow the map without bound.
func NewKeyed(burst int, every time.Duration, maxKeys int) *Keyed {
	return &Keyed{burst: burst, every: every, maxKeys: maxKeys, m: map[string]*Limiter{}}
}

// Allow is Limiter.Allow for key.
func (k *Keyed) Allow(key string) (suppressed uint64, ok bool) {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		if len(k.m) >= k.maxKeys {
			key = "\x00other"
			l = k.m[key]
		}
		if l == nil {
			l = New(k.burst, k.every)
			k.m[key] = l
		}
	}
	k.mu.Unlock()
	return l.Allow()
}
