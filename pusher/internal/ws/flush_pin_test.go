//go:build !portable

package ws

import (
	"testing"
)

// TestFlushLeavesNoFramePinned: a worker clears only the slots a flush used, not all iovMax of
// them (24 KiB of pointers per flush, a visible share of a connection's cost), so flushOnce must
// clear each pass's frames before its next take. Here a Send lands during the first writev, a
// second pass takes fewer frames than the first, and after the worker's clear no slot may still
// hold a frame: a pinned frame keeps a shared broadcast buffer alive.
func TestFlushLeavesNoFramePinned(t *testing.T) {
	s := startServer(t, Options{}, nil)
	wc := dial(t, s)
	c, _ := s.next(t)
	if c.rc == nil {
		t.Skip("not a TCP conn")
	}
	w := newWorker(iovMax)
	sent := false
	w.try = func(fd uintptr) bool {
		if !sent { // queued while the first pass writes: the second pass takes it
			sent = true
			c.mu.Lock()
			c.push(AppendFrame(nil, OpText, []byte("late")))
			c.mu.Unlock()
		}
		return w.writevOnce(fd)
	}
	c.mu.Lock()
	if c.scheduled { // Adopt queued nothing, so no flusher holds it; be sure
		c.mu.Unlock()
		t.Fatal("conn already scheduled")
	}
	c.scheduled = true
	for _, p := range []string{"one", "two", "three"} {
		c.push(AppendFrame(nil, OpText, []byte(p)))
	}
	c.mu.Unlock()
	c.flushOnce(w)
	clear(w.bufs) // as Flusher.worker does
	for i, b := range w.bufs[:cap(w.bufs)] {
		if b != nil {
			t.Fatalf("slot %d still holds a frame (%q) after the flush", i, b)
		}
	}
	for _, want := range []string{"one", "two", "three", "late"} {
		if _, p, err := wc.ReadMessage(); err != nil || string(p) != want {
			t.Fatalf("read %q, %v; want %q", p, err, want)
		}
	}
}
