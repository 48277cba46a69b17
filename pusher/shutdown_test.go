package pusher

import (
	"context"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/leaktest"
)

// Shutdown ends everything the server started — janitor, flusher workers, epoll pollers, serving
// goroutines — after telling clients to reconnect (4200). Before, the flusher and the pollers
// outlived every Server (GOMAXPROCS goroutines leaked per Server).
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	leaktest.Check(t, "github.com/frontdoorhq/frontdoor/pusher")
	ts := startServer(t, oneApp())
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("room", "")
	b.subscribe("room", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a.expectClose(4200)
	b.expectClose(4200)
}
