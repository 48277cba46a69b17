package ratelog

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBurstThenRate(t *testing.T) {
	l := New(3, time.Second)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if _, ok := l.AllowAt(t0); !ok {
			t.Fatalf("line %d of the burst refused", i)
		}
	}
	for range 5 {
		if _, ok := l.AllowAt(t0.Add(100 * time.Millisecond)); ok {
			t.Fatal("a line past the burst allowed before a token came back")
		}
	}
	n, ok := l.AllowAt(t0.Add(1100 * time.Millisecond))
	if !ok || n != 5 {
		t.Fatalf("after one interval: ok=%v suppressed=%d, want true 5", ok, n)
	}
	if _, ok := l.AllowAt(t0.Add(1200 * time.Millisecond)); ok {
		t.Fatal("two lines in one interval after the burst")
	}
	if n := l.Flush(); n != 1 {
		t.Fatalf("Flush = %d, want 1", n)
	}
}

func TestConcurrentAllowCountsEveryLine(t *testing.T) {
	l := New(1, time.Hour)
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
	if allowed != 1 || l.Flush() != 7999 {
		t.Fatalf("allowed %d lines of 8000 in one interval, want 1 and 7999 counted", allowed)
	}
}

func TestKeyedIsolatesAndBoundsKeys(t *testing.T) {
	k := NewKeyed(1, time.Hour, 4)
	if _, ok := k.Allow("a"); !ok {
		t.Fatal("first line of a refused")
	}
	if _, ok := k.Allow("b"); !ok {
		t.Fatal("a flood of a hid b")
	}
	for i := range 100 {
		k.Allow(fmt.Sprint("client-made-", i))
	}
	if len(k.m) > 5 {
		t.Fatalf("%d limiters for 102 keys, want at most maxKeys+1", len(k.m))
	}
}
