package tls

import (
	cryptotls "crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestSplitH2RoutesByALPN: with HTTP2 on, ALPN offers h2 first; connections that chose h2 come
// out of the h2 listener as the handshaken *tls.Conn, those that chose http/1.1 or nothing out of
// h1, a failed handshake out of neither; closing h1 closes both.
func TestSplitH2RoutesByALPN(t *testing.T) {
	m, err := New(Config{Mode: "self-signed", Domains: []string{"app.local"}, HTTPSAddr: ":443", HTTPAddr: ":80", HTTP2: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := SplitH2(m.NewListener(ln), 5*time.Second)
	defer h1.Close()
	addr := ln.Addr().String()

	accept := func(l net.Listener) <-chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				ch <- c
			}
		}()
		return ch
	}
	dial := func(protos ...string) *cryptotls.Conn {
		c, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true, ServerName: "app.local", NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	got2 := accept(h2)
	if p := dial("h2", "http/1.1").ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	select {
	case c := <-got2:
		if _, ok := c.(*cryptotls.Conn); !ok || !c.(*cryptotls.Conn).ConnectionState().HandshakeComplete {
			t.Fatalf("h2 listener gave %T, want a handshaken *tls.Conn", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the h2 connection did not reach the h2 listener")
	}

	for _, protos := range [][]string{{"http/1.1"}, nil} {
		got1 := accept(h1)
		dial(protos...)
		select {
		case c := <-got1:
			if _, ok := c.(*serverConn); !ok {
				t.Fatalf("h1 listener gave %T", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ALPN %v did not reach the h1 listener", protos)
		}
	}

	// A client that is not TLS at all: closed after the failed handshake, seen by neither.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("plain-text client: %v, want the connection closed", err)
	}

	h1.Close()
	if _, err := h2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("h2 Accept after h1.Close: %v", err)
	}
}

// Handshakes run on reused goroutines (their grown stacks kept), at most maxIdleHandshakers of
// them wait between bursts, and they all end with the accept loop.
func TestHandshakersReuseAndBound(t *testing.T) {
	h := handshakers{next: make(chan net.Conn)}
	var started atomic.Int32
	release := make(chan struct{})
	routed := make(chan net.Conn)
	route := func(c net.Conn) { started.Add(1); routed <- c; <-release }
	waitIdle := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); h.idle.Load() != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle handshakers, want %d", h.idle.Load(), want)
			}
		}
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()

	// One connection after another: the same goroutine takes each (a new one each time would
	// leave the earlier ones idle).
	for range 3 {
		h.run(c1, route)
		<-routed
		release <- struct{}{}
		waitIdle(1)
	}
	// A burst of 100 at once: the one idle goroutine takes one, 99 more start, and when all are
	// done at most maxIdleHandshakers stay.
	for range 100 {
		h.run(c1, route)
	}
	for range 100 {
		<-routed
	}
	if n := started.Load(); n != 103 {
		t.Fatalf("%d routed, want 103", n)
	}
	close(release)
	waitIdle(maxIdleHandshakers)
	// The accept loop's end closes next: every idle one ends.
	close(h.next)
	waitIdle(0)
}
