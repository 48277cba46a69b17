package redis

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
)

// libLog carries go-redis' own log lines (it prints to its own logger, several a second while
// Redis is down) into zerolog, at most one line per interval with a count of those left out, so
// an outage neither floods the log nor bypasses the log format and level.
type libLog struct {
	log   atomic.Pointer[zerolog.Logger]
	lines *ratelog.Limiter
}

// goredisLog is installed once for the process: go-redis has one logger for all its clients, so
// it logs through the broker created last.
var goredisLog = func() *libLog {
	l := &libLog{lines: ratelog.New(1, 10*time.Second)}
	nop := zerolog.Nop()
	l.log.Store(&nop)
	goredis.SetLogger(l)
	return l
}()

// Printf implements go-redis' logging interface.
func (l *libLog) Printf(_ context.Context, format string, v ...any) {
	quiet, ok := l.lines.Allow()
	if !ok {
		return
	}
	l.log.Load().Warn().Str("component", "go-redis").Uint64("suppressed", quiet).
		Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
