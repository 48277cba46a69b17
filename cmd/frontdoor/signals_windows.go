package main

import "os"

// controlSignals is empty: Windows delivers neither SIGHUP nor SIGUSR2, so there is no reload
// signal (restart the process to pick up new settings or certificate files) and no zero-downtime
// upgrade.
var controlSignals []os.Signal

func isReload(os.Signal) bool { return false }

func signalUpgrade(int) error { return errNoUpgrade }

// processGone is never asked on Windows: restart refuses before it waits.
func processGone(int) bool { return true }
