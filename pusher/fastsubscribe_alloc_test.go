//go:build !race

// Allocation counts are only meaningful without the race detector; test/test.sh runs these
// tests in a separate pass without -race.

package pusher

import (
	"encoding/json"
	"testing"
)

// TestFastSubscribeAllocs: decoding pusher-js's subscribe costs the channel name's string and
// nothing else (encoding/json's two decodes cost several allocations: the figure is logged).
func TestFastSubscribeAllocs(t *testing.T) {
	frame := []byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`)
	fast := testing.AllocsPerRun(1000, func() {
		if _, ok := fastSubscribe(frame); !ok {
			t.Fatal("not accepted")
		}
	})
	slow := testing.AllocsPerRun(1000, func() {
		var m inbound
		var d subscribeData
		if json.Unmarshal(frame, &m) != nil || decodeData(m.Data, &d) != nil {
			t.Fatal("encoding/json refused it")
		}
	})
	t.Logf("allocations per subscribe decode: fast path %.0f, encoding/json %.0f", fast, slow)
	if fast > 1 {
		t.Fatalf("fast path: %.0f allocations, want 1 (the channel name)", fast)
	}
}
