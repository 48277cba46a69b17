package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawIOPair is a loopback TCP connection, the client side through rawIO as upstream
// connections are dialled, the server side plain.
func rawIOPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client = rawIO(c)
	t.Cleanup(func() { client.Close(); s.Close() })
	return client, s
}

// TestRawIOConnBehavesAsNetConn: what fasthttp and the proxy rely on of an upstream connection
// holds through rawIO: bytes arrive whole both ways past full socket buffers (a write that
// must wait for the poller), a read deadline ends a silent read with a timeout, the peer's
// close is io.EOF itself, and Close from another goroutine ends a waiting read.
func TestRawIOConnBehavesAsNetConn(t *testing.T) {
	t.Run("large both ways", func(t *testing.T) {
		c, s := rawIOPair(t)
		out := make([]byte, 8<<20) // far above the socket buffers: writes wait on the poller
		rand.Read(out)
		done := make(chan error, 1)
		go func() {
			time.Sleep(50 * time.Millisecond) // let the writer fill the buffers first
			got, err := io.ReadAll(io.LimitReader(s, int64(len(out))))
			if err == nil && !bytes.Equal(got, out) {
				err = errors.New("server read other bytes than written")
			}
			if err == nil {
				_, err = s.Write(got)
			}
			done <- err
		}()
		if n, err := c.Write(out); err != nil || n != len(out) {
			t.Fatalf("write: %d %v", n, err)
		}
		back := make([]byte, len(out))
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, out) {
			t.Fatal("read back other bytes")
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		c, _ := rawIOPair(t)
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		var ne net.Error
		_, err := c.Read(make([]byte, 10))
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v", err)
		}
	})
	t.Run("peer close is io.EOF", func(t *testing.T) {
		c, s := rawIOPair(t)
		if _, err := s.Write([]byte("last")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		b, err := io.ReadAll(c) // ReadAll stops on io.EOF only
		if err != nil || string(b) != "last" {
			t.Fatalf("%q %v", b, err)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after EOF: %d %v, want 0 io.EOF", n, err)
		}
	})
	t.Run("close ends a waiting read", func(t *testing.T) {
		c, _ := rawIOPair(t)
		errc := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
		time.Sleep(20 * time.Millisecond)
		c.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed conn: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("read still waiting after Close")
		}
	})
}
