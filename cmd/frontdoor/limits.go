package main

import (
	"errors"
	"os"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/gcfloor"
	"github.com/frontdoorhq/frontdoor/internal/rlimit"
)

// raiseFileLimit lifts the soft descriptor limit to the hard one: every WebSocket is a descriptor,
// and the common soft default of 1024 is the first wall a Reverb team hits (laravel-config.md §5 #14).
func raiseFileLimit(log zerolog.Logger) {
	cur, hard, err := rlimit.NoFile()
	if errors.Is(err, errors.ErrUnsupported) {
		log.Debug().Err(err).Msg("no file descriptor limit to raise")
		return
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the file descriptor limit")
		return
	}
	if cur < hard && rlimit.SetNoFile(hard, hard) == nil {
		cur = hard
	}
	ev := log.Info()
	if cur < 10000 {
		ev = log.Warn().Str("fix", "raise it: LimitNOFILE=1048576 in the systemd unit, or ulimit -n")
	}
	ev.Uint64("nofile", cur).Uint64("nofile_max", hard).Msg("file descriptor limit (each WebSocket holds one)")
}

// setHeapFloor keeps the collector from running dozens of times a second while the live heap is
// small (internal/gcfloor); GOGC in the environment is the operator's word and wins.
func setHeapFloor(log zerolog.Logger) {
	v, gogc := os.LookupEnv("GOGC")
	if _, err := strconv.Atoi(v); gogc && err != nil && v != "off" {
		// Go itself ignores such a value and runs at 100; the floor stays off all the same.
		log.Warn().Str("GOGC", v).Msg("GOGC is neither a number nor off: the garbage collector runs at Go's default (100)")
	}
	t := gcfloor.Start(gcfloor.DefaultFloor, gogc)
	if t == nil {
		log.Debug().Bool("gogc_set", gogc).Msg("garbage collector left at its settings")
		return
	}
	log.Debug().Uint64("heap_floor_mib", gcfloor.DefaultFloor>>20).Int("gogc", t.Percent()).Msg("garbage collector heap floor")
}
