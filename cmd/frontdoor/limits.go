package main

import (
	"syscall"

	"github.com/rs/zerolog"
)

// raiseFileLimit lifts the soft descriptor limit to the hard one: every WebSocket is a descriptor,
// and the common soft default of 1024 is the first wall a Reverb team hits (laravel-config.md §5 #14).
func raiseFileLimit(log zerolog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn().Err(err).Msg("cannot read the file descriptor limit")
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	ev := log.Info()
	if lim.Cur < 10000 {
		ev = log.Warn().Str("fix", "raise it: LimitNOFILE=1048576 in the systemd unit, or ulimit -n")
	}
	ev.Uint64("nofile", lim.Cur).Uint64("nofile_max", lim.Max).Msg("file descriptor limit (each WebSocket holds one)")
}
