//go:build linux && !portable

package ws

import (
	"fmt"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
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

// TestPassWritesItsReplies: the 101 response and first frames are written by Adopt's caller, and
// what a handler sends while a readiness pass runs (the reply to the client's message) by that
// pass when it ends, not handed to a flusher goroutine: a goroutine hand-off less for each. The
// Flusher here has no workers, so a frame handed to one would never arrive.
func TestPassWritesItsReplies(t *testing.T) {
	if !EpollDriver {
		t.Skip("the portable driver has no readiness passes")
	}
	s := startServerWith(t, Options{}, nil, newFlusher(64), [][]byte{AppendFrame(nil, OpText, []byte("hello"))})
	s.echo.Store(true)
	wc := dial(t, s)
	c, _ := s.next(t)
	if !c.polled() {
		t.Skip("epoll unavailable here")
	}
	_ = wc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := wc.ReadMessage(); err != nil || string(p) != "hello" {
		t.Fatalf("first frame %q, %v", p, err)
	}
	for i := range 3 {
		msg := fmt.Sprintf("m-%d", i)
		if err := wc.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = wc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := wc.ReadMessage(); err != nil || string(p) != msg {
			t.Fatalf("echo %q, %v; want %q", p, err, msg)
		}
	}
}
