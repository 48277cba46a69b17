package ws

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSlowConsumerIsReset: a conn closed as a slow consumer while the kernel still holds bytes
// the client never read is reset, plain or over TLS: the client's read ends in ECONNRESET, where
// a plain close would queue a FIN behind those bytes and keep the socket in FIN-WAIT-1.
func TestSlowConsumerIsReset(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[overTLS], func(t *testing.T) {
			var cfg *tls.Config
			if overTLS {
				cfg = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			}
			s := startServer(t, Options{MaxQueueBytes: 64 << 10}, cfg)
			raw := dialSmallBuffer(t, s.addr, 4096)
			var client net.Conn = raw
			if overTLS {
				client = tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
			}
			upgrade(t, client, s.addr)
			conn, rec := s.next(t)
			frame := AppendFrame(nil, OpText, bytes.Repeat([]byte("z"), 1000))
			// Paced so the writer moves the frames into the kernel until the client's window is
			// shut and the socket buffer full; only then does the queue overflow.
			full := false
			for sent := 0; conn.Send(frame) == nil; sent++ {
				if sent > 100000 {
					t.Fatal("the queue never overflowed")
				}
				if !full && sent%16 == 15 {
					deadline := time.Now().Add(100 * time.Millisecond)
					for conn.queuedBytes() > 0 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					full = conn.queuedBytes() > 0
				}
			}
			if code, _ := rec.waitClosed(t); code != CloseOverCapacity {
				t.Fatalf("closed with %d, want 4100", code)
			}
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, client); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read ended with %v, want ECONNRESET", err)
			}
		})
	}
}
