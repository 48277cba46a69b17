//go:build !race

// Allocation counts are only meaningful without the race detector; test/test.sh runs these
// tests in a separate pass without -race.

package ws

import (
	"testing"
)

// TestSendAllocs: enqueueing a shared frame allocates nothing per recipient (docs/architecture.md
// "Encode once, write many"). The conn is held "scheduled" so only the Send path is measured.
func TestSendAllocs(t *testing.T) {
	c := &Conn{maxQueueBytes: 1 << 20, maxQueueFrames: 4096, scheduled: true}
	frame := AppendFrame(nil, OpText, []byte(`{"event":"x","channel":"c","data":"{}"}`))
	n := testing.AllocsPerRun(1000, func() {
		if err := c.Send(frame); err != nil {
			t.Fatal(err)
		}
		c.queue, c.queued, c.qbuf = nil, 0, [2][]byte{} // what a flush leaves behind
	})
	if n != 0 {
		t.Fatalf("Send allocates %v times per call", n)
	}
}
