package pusher

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestCloseWindow: authorizations over PHP's rate, at least a second, and never past the
// shutdown deadline less the margin.
func TestCloseWindow(t *testing.T) {
	for _, c := range []struct {
		auths int
		rate  float64
		left  time.Duration
		want  time.Duration
	}{
		{20000, 400, 60 * time.Second, 50 * time.Second}, // 10,000 sockets × 2 private channels, PHP at 400/s
		{20000, 400, 10 * time.Second, 8 * time.Second},  // the default 10 s shutdown timeout caps it
		{100, 400, 10 * time.Second, time.Second},        // few: the old one-second spread
		{20000, 0, 10 * time.Second, time.Second},        // rate unknown
		{20000, 400, 0, 50 * time.Second},                // no deadline
		{20000, 400, 2 * time.Second, time.Second},       // deadline closer than the margin
	} {
		if got := closeWindow(c.auths, c.rate, c.left); got != c.want {
			t.Errorf("closeWindow(%d, %v, %s) = %s, want %s", c.auths, c.rate, c.left, got, c.want)
		}
	}
}

// TestShutdownPacedForPHP: 12 sockets with two private channels each and PHP answering 8
// authorizations a second: the 4200 closes are spread over 24/8 = 3 s, not bunched into the
// first second as before (when the last close went out 0.9 s after the first).
func TestShutdownPacedForPHP(t *testing.T) {
	cfg := oneApp()
	cfg.AuthRate = func() float64 { return 8 }
	ts := startServer(t, cfg)
	const n = 12
	clients := make([]*client, n)
	for i := range clients {
		c := ts.connect(t, "key1")
		for _, ch := range []string{"private-orders", "private-user.7"} {
			if f := c.subscribe(ch, ""); f.Event != "pusher_internal:subscription_succeeded" {
				t.Fatalf("subscribe %s: %+v", ch, f)
			}
		}
		clients[i] = c
	}
	// Public channels cost PHP nothing and do not lengthen the window.
	clients[0].subscribe("news", "")

	var mu sync.Mutex
	var closedAt []time.Time
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, _, err := c.c.ReadMessage(); err != nil {
					mu.Lock()
					closedAt = append(closedAt, time.Now())
					mu.Unlock()
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	first, last := closedAt[0], closedAt[0]
	for _, at := range closedAt {
		first, last = minTime(first, at), maxTime(last, at)
	}
	// The last close is due 11/12 of the 3 s window after the first: a lower bound only (a
	// slow machine stretches it further, never shorter).
	if spread := last.Sub(first); spread < 2*time.Second {
		t.Fatalf("closes spread over %s, want about 3 s for 24 authorizations at 8/s", spread)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
