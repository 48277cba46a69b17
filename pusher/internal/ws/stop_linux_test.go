//go:build !portable

package ws

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An epoll_wait failure is reported and ends that poller's conns (their clients reconnect); it
// neither panics nor strands them, and new conns are served by read goroutines.
func TestPollErrorClosesItsConns(t *testing.T) {
	s := startServer(t, Options{}, nil)
	errs := make(chan error, 4)
	var fail atomic.Bool
	s.f.OnPollError = func(err error) { errs <- err }
	s.f.epollWait = func(epfd int, events []unix.EpollEvent, _ int) (int, error) {
		for { // the real wait in short slices, so the test can make it fail as the kernel would
			if fail.Load() {
				return 0, unix.EBADF
			}
			if n, err := unix.EpollWait(epfd, events, 10); n != 0 || err != nil {
				return n, err
			}
		}
	}
	wc := dial(t, s)
	c, rec := s.next(t)
	if c.poller == nil {
		t.Fatal("the conn is not in a poller")
	}
	fail.Store(true)
	if err := <-errs; !errors.Is(err, unix.EBADF) {
		t.Fatalf("poll error = %v, want EBADF", err)
	}
	rec.waitClosed(t)
	if _, _, err := wc.ReadMessage(); err == nil {
		t.Fatal("the client of a failed poller was not disconnected")
	}

	wc2 := dial(t, s)
	c2, rec2 := s.next(t)
	if c2.poller != nil && c2.poller.failed.Load() {
		t.Fatal("a new conn went to a failed poller")
	}
	if err := wc2.WriteMessage(1, []byte("still served")); err != nil {
		t.Fatal(err)
	}
	<-rec2.gotMsg
}

// Both ways a poller waits serve conns and end at Stop: parked in the runtime's poller (where it
// can watch the epoll fd, which is everywhere this driver builds) and blocked in epoll_wait.
func TestPollerWaitModes(t *testing.T) {
	for _, inRuntime := range []bool{true, false} {
		t.Run(fmt.Sprint("in_runtime=", inRuntime), func(t *testing.T) {
			pollInRuntime = inRuntime
			defer func() { pollInRuntime = true }()
			s := startServer(t, Options{}, nil)
			wc := dial(t, s)
			c, rec := s.next(t)
			if c.poller == nil {
				t.Fatal("the conn is not in a poller")
			}
			if got := c.poller.rc != nil; got != inRuntime {
				t.Fatalf("poller waits in the runtime's poller: %v, want %v", got, inRuntime)
			}
			for i := range 3 {
				if err := wc.WriteMessage(1, []byte(fmt.Sprint("message ", i))); err != nil {
					t.Fatal(err)
				}
				select {
				case <-rec.gotMsg:
				case <-time.After(10 * time.Second):
					t.Fatalf("message %d not served", i)
				}
			}
			done := make(chan struct{})
			go func() { s.f.Stop(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Stop did not end the poller's wait")
			}
		})
	}
}
