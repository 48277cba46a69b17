//go:build windows

package tls

import "os"

// lockFile is a no-op on Windows, which has no zero-downtime restart: one process owns the keys.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
