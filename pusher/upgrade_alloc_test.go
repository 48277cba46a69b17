package pusher

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// TestUpgradeGarbage counts the bytes the whole process allocates per WebSocket connection that
// upgrades, gets connection_established and drops, with fasthttp set up as cmd/frontdoor sets it
// up (16 KiB read buffer, StreamRequestBody, KeepHijackedConns). fasthttp leaves the read buffer
// of a hijacked connection to the GC; ws gives it back to fasthttp's pool (reclaim.go), so an
// upgrade allocates a few KiB, not 16 KiB more. The churn benchmark's GC share follows this
// figure (docs/benchmarks.md, "Churn by instruction count"). Under -race, sync.Pool drops a
// quarter of what it is given, hence the higher bound there.
func TestUpgradeGarbage(t *testing.T) {
	ts := startServerHTTP(t, oneApp(), nil, zerolog.Nop(), func(hs *fasthttp.Server) {
		hs.ReadBufferSize = 16 << 10 // cmd/frontdoor's maxHeaderBytes
		hs.MaxRequestBodySize = 4 << 20
	})
	br := bufio.NewReaderSize(nil, 512)
	buf := make([]byte, 512)
	cycle := func() {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br.Reset(c)
		for { // the 101 response's header block
			line, err := br.ReadSlice('\n')
			if err != nil {
				t.Fatal(err)
			}
			if string(line) == "\r\n" {
				break
			}
		}
		// connection_established: an unmasked text frame with a 7-bit length.
		if _, err := io.ReadFull(br, buf[:2]); err != nil || buf[0] != 0x81 || buf[1] >= 126 {
			t.Fatalf("first frame header % x, %v", buf[:2], err)
		}
		if _, err := io.ReadFull(br, buf[:buf[1]]); err != nil {
			t.Fatal(err)
		}
	}
	idle := func() { // every socket of the server gone: its allocations are all counted
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for ts.srv.conns.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d sockets still open", ts.srv.conns.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 50 { // fasthttp's worker pool, its reader pool, the flusher
		cycle()
	}
	idle()
	const n = 300
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		cycle()
	}
	idle()
	runtime.ReadMemStats(&m1)
	per := float64(m1.TotalAlloc-m0.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per upgrade (client and server), %.2f GCs per 100 upgrades", per, float64(m1.NumGC-m0.NumGC)*100/n)
	limit := float64(10 << 10)
	if raceEnabled {
		limit = 14 << 10
	}
	if per > limit {
		t.Errorf("%.0f bytes allocated per upgrade, want at most %.0f: is fasthttp's 16 KiB read buffer garbage again?", per, limit)
	}
}
