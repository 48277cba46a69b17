package main

import (
	"errors"

	"github.com/rs/zerolog"

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
