// Package testenv decides what a test does when a real component it starts (php-fpm, nginx,
// redis-server, Pebble, Chromium, the go tool) is missing: it skips, so `go test ./...` works on a
// developer's laptop, unless FRONTDOOR_REQUIRE_INTEGRATION=1 (set by test/test.sh and CI), where
// a missing component fails the run instead of silently testing less.
package testenv

import (
	"os"
	"testing"
)

// Required reports whether missing components must fail tests (FRONTDOOR_REQUIRE_INTEGRATION=1).
func Required() bool { return os.Getenv("FRONTDOOR_REQUIRE_INTEGRATION") == "1" }

// Missing ends the test because what is unavailable: why says what failed, hint how to get it.
func Missing(t testing.TB, what, why, hint string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s unavailable (FRONTDOOR_REQUIRE_INTEGRATION=1): %s; %s", what, why, hint)
	}
	t.Skipf("%s unavailable: %s; %s", what, why, hint)
}
