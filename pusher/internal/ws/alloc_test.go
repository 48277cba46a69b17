//go:build !race

// Allocation counts are only meaningful without the race detector; test/test.sh runs these
// tests in a separate pass without -race.

package ws

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSendAllocs: enqueueing a shared frame allocates nothing per recipient (docs/architecture.md
// "Encode once, write many"). The conn is held "scheduled" so only the Send path is measured.
func TestSendAllocs(t *testing.T) {
	c := &Conn{maxQueueBytes: 1 << 20, maxQueueFrames: 4096, scheduled: true}
	frame := AppendFrame(nil, OpText, []byte(`{"event":"x","channel":"c","data":"{}"}`))
	n := testing.AllocsPerRun(1000, func() {
		if err := c.Send(frame); err != nil {
			t.Fatal(err)
		}
		c.queue, c.queued, c.qbuf = nil, 0, [2][]byte{} // what a flush leaves behind
	})
	if n != 0 {
		t.Fatalf("Send allocates %v times per call", n)
	}
}

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
	c := &Conn{nc: sc, rc: rc, pollRC: rc, poller: p, pollID: 1 << 40}
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
