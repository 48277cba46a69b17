package tls

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// An on-demand name the app allows is ordered at its first handshake and served; a name it
// refuses never reaches the CA.
func TestPebbleOnDemandAllowedAndRefused(t *testing.T) {
	t.Parallel()
	allowed, refused := "tenant-"+uniqueName(t), "stranger-"+uniqueName(t)
	var asks atomic.Int32
	s := newSiteWith(t, tlsALPN01, pebbletest.Options{}, func(c *Config) {
		c.OnDemand = &OnDemand{Allowed: func(_ context.Context, name string) bool {
			asks.Add(1)
			return name == allowed
		}}
	}, "app-"+uniqueName(t))
	for range 2 {
		if _, err := s.handshake(t, refused); err == nil {
			t.Fatal("handshake for a refused name succeeded")
		}
	}
	if n := s.pebble.Orders(); n != 0 {
		t.Fatalf("%d orders for a refused name\n%s", n, s.pebble.Log())
	}
	st, err := s.handshake(t, allowed)
	if err != nil {
		t.Fatalf("allowed name: %v\n%s", err, s.pebble.Log())
	}
	s.checkIssuedFor(t, allowed, st)
	// Served again without a new order.
	if _, err := s.handshake(t, allowed); err != nil {
		t.Fatal(err)
	}
	if n := s.pebble.Orders(); n != 1 {
		t.Fatalf("%d orders, want 1 (the allowed name, once)", n)
	}
	stats := s.m.OnDemandStats()
	if stats.Orders != 1 || stats.Issued != 1 || stats.Refused != 2 {
		t.Fatalf("stats %+v, want 1 order, 1 issued, 2 refused", stats)
	}
}

// A storm of unknown names that the app (worst case) all allows costs at most the order bucket's
// burst at the CA; the rest are refused without an order.
func TestPebbleOnDemandStormIsRateLimited(t *testing.T) {
	t.Parallel()
	const burst = 3
	s := newSiteWith(t, tlsALPN01, pebbletest.Options{}, func(c *Config) {
		c.OnDemand = &OnDemand{Allowed: func(context.Context, string) bool { return true }, OrdersPerMinute: 0.001, Burst: burst}
	}, "app-"+uniqueName(t))
	base := uniqueName(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	var ok atomic.Int32
	for i := range 200 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := s.handshake(t, "n"+strconv.Itoa(i)+"-"+base); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	stats := s.m.OnDemandStats()
	if n := s.pebble.Orders(); n > burst {
		t.Fatalf("%d orders at Pebble for a storm, want ≤ %d (stats %+v)", n, burst, stats)
	}
	if stats.Orders > burst || stats.RateLimited < 200-burst {
		t.Fatalf("stats %+v: want ≤ %d orders and the rest rate-limited", stats, burst)
	}
	if int(ok.Load()) != int(stats.Issued) || stats.Issued == 0 {
		t.Fatalf("%d handshakes succeeded, %d issued: the bucket's orders should be served", ok.Load(), stats.Issued)
	}
}
