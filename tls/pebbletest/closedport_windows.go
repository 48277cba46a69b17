package pebbletest

import "testing"

// ClosedPort needs a socket bound but not listening, which this helper makes with Unix calls:
// on Windows the test is skipped.
func ClosedPort(t testing.TB) int {
	t.Skip("pebbletest.ClosedPort is Unix-only")
	return 0
}
