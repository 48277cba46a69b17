//go:build unix

package main

import (
	"os"
	"syscall"
)

// controlSignals are what serve handles besides stopping: SIGHUP reloads certificates and
// settings, SIGUSR2 starts a zero-downtime upgrade (upgrade.go).
var controlSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR2}

// isReload tells SIGHUP from SIGUSR2.
func isReload(sig os.Signal) bool { return sig == syscall.SIGHUP }

// signalUpgrade asks the serve process pid to upgrade itself.
func signalUpgrade(pid int) error { return syscall.Kill(pid, syscall.SIGUSR2) }

// processGone reports that pid no longer exists (frontdoor restart waits for the old process).
func processGone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
