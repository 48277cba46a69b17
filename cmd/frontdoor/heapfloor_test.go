package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// A GOGC that Go cannot read is named in a warning (Go runs at 100 then); a valid one is the
// operator's and passes silently. Either way the heap floor stays off.
func TestHeapFloorGOGCWarning(t *testing.T) {
	for _, c := range []struct {
		value string
		warn  bool
	}{{"abc", true}, {"", true}, {"200", false}, {"off", false}} {
		t.Setenv("GOGC", c.value)
		var buf bytes.Buffer
		setHeapFloor(zerolog.New(&buf))
		if got := strings.Contains(buf.String(), `"GOGC":"`+c.value+`"`); got != c.warn {
			t.Errorf("GOGC=%q: warning %v, want %v; log: %s", c.value, got, c.warn, buf.String())
		}
		if strings.Contains(buf.String(), "heap floor") {
			t.Errorf("GOGC=%q: the floor started: %s", c.value, buf.String())
		}
	}
}
