package main

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

func parseLevel(s string) (zerolog.Level, error) {
	return zerolog.ParseLevel(strings.ToLower(s))
}

// logLevel is the level serve logs at: trace under --debug, whatever log-level says.
func (s *settings) logLevel() string {
	if s.Debug {
		return "trace"
	}
	return s.LogLevel
}

// newLogger writes JSON for log collectors and a readable console format when a person watches
// the terminal (docs/architecture.md "Errors and logs"). Every line carries the process id: during an upgrade
// the old and the new process write to the same log, and pid tells them apart.
func newLogger(w io.Writer, format, level string) zerolog.Logger {
	lvl, err := parseLevel(level)
	if err != nil || lvl == zerolog.NoLevel {
		lvl = zerolog.InfoLevel
	}
	if format == "console" || (format == "auto" && isTerminal(w)) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Int("pid", os.Getpid()).Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
