package workers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
)

// newLineLimiter lets at most perSecond lines of one copy into the log each second (a burst of
// perSecond, refilled evenly). A chatty or looping worker must not flood frontdoor's log (and the
// disk behind journald): the lines beyond the budget are counted, and the count is written with
// the next line let through and when the copy's output ends.
func newLineLimiter(perSecond int) *ratelog.Limiter {
	if perSecond <= 0 {
		return ratelog.New(0, time.Second)
	}
	return ratelog.New(perSecond, time.Second/time.Duration(perSecond))
}

// pump copies one output stream of a copy into the log, a line per entry, until the stream ends
// (the copy and every process that inherited the stream have closed it). It never stops reading
// early: a worker blocked on a full pipe would stall mid-job. Lines longer than maxLine are cut
// and marked truncated. dropped is told about every suppressed line, for the metric.
func pump(r io.Reader, maxLine int, stream string, lim *ratelog.Limiter, log zerolog.Logger, dropped func()) {
	br := bufio.NewReaderSize(r, maxLine)
	level := zerolog.InfoLevel
	if stream == "stderr" {
		level = zerolog.WarnLevel
	}
	for {
		line, err := br.ReadSlice('\n')
		text := string(bytes.TrimRight(line, "\r\n")) // a copy: the next ReadSlice reuses line
		truncated := errors.Is(err, bufio.ErrBufferFull)
		if truncated {
			// Drop the rest of this line, however long, without holding it in memory.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			err = nil
		}
		if text != "" {
			if n, ok := lim.Allow(); ok {
				ev := log.WithLevel(level).Str("stream", stream)
				if truncated {
					ev = ev.Bool("truncated", true)
				}
				if n > 0 {
					ev = ev.Uint64("suppressed_lines", n)
				}
				ev.Msg(text)
			} else {
				dropped()
			}
		}
		if err != nil {
			if n := lim.Flush(); n > 0 {
				log.Warn().Str("stream", stream).Uint64("suppressed_lines", n).
					Msg("worker output over the log rate limit was not logged")
			}
			return
		}
	}
}
