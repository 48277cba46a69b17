//go:build !race && !portable

package ws

import (
	"encoding/binary"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPollReadAndArmAllocs: a readiness pass's read and re-arm allocate nothing (their RawConn
// callbacks are pooled and bound once), so an inbound message costs no garbage in ws.
func TestPollReadAndArmAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	f := NewFlusher(1)
	defer f.Stop()
	p := f.pollerFor(1)
	if p == nil {
		t.Fatal("no epoll poller on Linux")
	}
	c := &Conn{nc: sc, rc: rc, pollRC: rc}
	c.poller, c.pollID = p, 1<<40
	if err := p.arm(c, unix.EPOLL_CTL_ADD); err != nil {
		t.Fatal(err)
	}
	msg := []byte("x")
	n := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		for {
			r, got, again := c.readNow()
			pollReaders.Put(r)
			if got > 0 {
				break
			}
			if !again {
				t.Fatal("conn ended")
			}
		}
		if err := p.arm(c, unix.EPOLL_CTL_MOD); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("read + re-arm allocate %v times per pass", n)
	}
}

// TestPollerWaitAllocs: a poller's wait for events, parked in the runtime's poller, allocates
// nothing per wake-up (its RawConn callback is bound once).
func TestPollerWaitAllocs(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.file.Close()
		unix.Close(p.wake)
	}()
	if p.rc == nil {
		t.Fatal("the poller does not wait in the runtime's poller")
	}
	events := make([]unix.EpollEvent, 8)
	one := binary.NativeEndian.AppendUint64(nil, 1)
	var drain [8]byte
	n := testing.AllocsPerRun(100, func() {
		if _, err := unix.Write(p.wake, one); err != nil {
			t.Fatal(err)
		}
		if k, err := p.next(epollWait, events); k != 1 || err != nil {
			t.Fatalf("next: %d events, %v", k, err)
		}
		if _, err := unix.Read(p.wake, drain[:]); err != nil { // the eventfd is level-triggered
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%.1f allocations per wake-up, want 0", n)
	}
}
