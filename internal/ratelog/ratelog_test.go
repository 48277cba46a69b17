package ratelog

import (
	"sync"
	"testing"
	"time"
)

func TestAllowOncePerInterval(t *testing.T) {
	l := New(time.Hour)
	if _, ok := l.Allow(); !ok {
		t.Fatal("the first line must be allowed")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if _, ok := l.Allow(); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 0 {
		t.Fatalf("%d lines allowed within the interval", allowed)
	}
	l.last.Store(time.Now().Add(-2 * time.Hour).UnixNano()) // the interval has passed
	n, ok := l.Allow()
	if !ok || n != 8000 {
		t.Fatalf("after the interval: ok=%v suppressed=%d, want true 8000", ok, n)
	}
}
