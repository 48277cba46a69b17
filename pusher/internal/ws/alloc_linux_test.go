//go:build !race && !portable

package ws

import (
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
