package redis

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// libLog carries go-redis' own log lines (it prints to its own logger, several a second while
// Redis is down) into zerolog, at most one line per interval with a count of those left out, so
// an outage neither floods the log nor bypasses the log format and level.
type libLog struct {
	log        atomic.Pointer[zerolog.Logger]
	every      time.Duration
	last       atomic.Int64 // when a line was last written (Unix ns)
	suppressed atomic.Uint64
}

// goredisLog is installed once for the process: go-redis has one logger for all its clients, so
// it logs through the broker created last.
var goredisLog = func() *libLog {
	l := &libLog{every: 10 * time.Second}
	nop := zerolog.Nop()
	l.log.Store(&nop)
	goredis.SetLogger(l)
	return l
}()

// Printf implements go-redis' logging interface.
func (l *libLog) Printf(_ context.Context, format string, v ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(l.every) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Load().Warn().Str("component", "go-redis").Uint64("suppressed", l.suppressed.Swap(0)).
		Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
