package rlimit

import (
	"errors"
	"fmt"
)

var errNone = fmt.Errorf("Windows has no open-file limit: %w", errors.ErrUnsupported)

// NoFile fails: Windows has no RLIMIT_NOFILE (sockets are bounded by memory).
func NoFile() (cur, max uint64, err error) { return 0, 0, errNone }

// SetNoFile fails: Windows has no RLIMIT_NOFILE.
func SetNoFile(cur, max uint64) error { return errNone }
