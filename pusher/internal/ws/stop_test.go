package ws

import (
	"testing"

	"github.com/frontdoorhq/frontdoor/internal/leaktest"
)

// The Flusher owns every goroutine ws starts: after Stop, no worker, poller or serving goroutine
// is left, and a conn still open is closed rather than stranded in a poller nobody waits on.
func TestFlusherStopEndsItsGoroutines(t *testing.T) {
	leaktest.Check(t, "github.com/frontdoorhq/frontdoor/pusher/internal/ws")
	s := startServer(t, Options{}, nil)
	var recs []*recorder
	for range 3 {
		wc := dial(t, s)
		if err := wc.WriteMessage(1, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		_, rec := s.next(t)
		<-rec.gotMsg // a readiness pass ran: serving goroutines exist
		recs = append(recs, rec)
	}
	s.f.Stop()
	for _, rec := range recs {
		rec.waitClosed(t)
	}
}
