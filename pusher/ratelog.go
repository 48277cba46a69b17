package pusher

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// rateLog keeps client-triggered log lines from becoming a flood (a client can send thousands of
// refused frames a second): per reason, a token bucket lets logBurst lines through and then
// logPerSecond; the rest are counted, and the next line that passes carries "suppressed": N for
// the lines its reason dropped in between. Metrics count every refusal; the log samples them.
type rateLog struct {
	log zerolog.Logger

	mu      sync.Mutex
	buckets map[string]*logBucket
}

type logBucket struct {
	tokens     float64
	last       time.Time
	suppressed uint64
}

const (
	logBurst     = 10
	logPerSecond = 1
	// maxLogReasons bounds the map; reasons are constants in the code, so this is never reached
	// unless a bug makes one from client input, and then those share one bucket.
	maxLogReasons = 256
)

func newRateLog(log zerolog.Logger) *rateLog {
	return &rateLog{log: log, buckets: map[string]*logBucket{}}
}

// event returns a log event at level, or nil when the level is off or key (a reason) is over its
// rate. A nil *zerolog.Event takes every field call and Msg as a no-op, so callers
// chain as usual and a suppressed line costs no formatting.
func (r *rateLog) event(level zerolog.Level, key string) *zerolog.Event {
	if r.log.GetLevel() > level || zerolog.GlobalLevel() > level {
		return nil
	}
	now := time.Now()
	r.mu.Lock()
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= maxLogReasons {
			key = "other"
			b = r.buckets[key]
		}
		if b == nil {
			b = &logBucket{tokens: logBurst, last: now}
			r.buckets[key] = b
		}
	}
	b.tokens = min(logBurst, b.tokens+now.Sub(b.last).Seconds()*logPerSecond)
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		r.mu.Unlock()
		return nil
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	r.mu.Unlock()
	e := r.log.WithLevel(level)
	if n > 0 {
		e = e.Uint64("suppressed", n)
	}
	return e
}
