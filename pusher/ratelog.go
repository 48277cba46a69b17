package pusher

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
)

// rateLog keeps client-triggered log lines from becoming a flood (a client can send thousands of
// refused frames a second): per reason, logBurst lines at once and then logPerSecond; the rest are
// counted, and the next line that passes carries "suppressed": N for the lines its reason dropped
// in between. Metrics count every refusal; the log samples them.
type rateLog struct {
	log     zerolog.Logger
	reasons *ratelog.Keyed
}

const (
	logBurst     = 10
	logPerSecond = 1
	// maxLogReasons bounds the limiters; reasons are constants in the code, so this is never
	// reached unless a bug makes one from client input, and then those share one limiter.
	maxLogReasons = 256
)

func newRateLog(log zerolog.Logger) *rateLog {
	return &rateLog{log: log, reasons: ratelog.NewKeyed(logBurst, time.Second/logPerSecond, maxLogReasons)}
}

// event returns a log event at level, or nil when the level is off or key (a reason) is over its
// rate. A nil *zerolog.Event takes every field call and Msg as a no-op, so callers chain as usual
// and a suppressed line costs no formatting.
func (r *rateLog) event(level zerolog.Level, key string) *zerolog.Event {
	if r.log.GetLevel() > level || zerolog.GlobalLevel() > level {
		return nil
	}
	n, ok := r.reasons.Allow(key)
	if !ok {
		return nil
	}
	e := r.log.WithLevel(level)
	if n > 0 {
		e = e.Uint64("suppressed", n)
	}
	return e
}
