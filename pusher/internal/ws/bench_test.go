package ws

import (
	"bytes"
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"time"

	"github.com/frontdoorhq/frontdoor/pusher/internal/memtest"
)

// BenchmarkParser feeds a stream of typical Pusher client messages (masked text frames) in
// 512-byte reads, as the read goroutine does.
func BenchmarkParser(b *testing.B) {
	m := [4]byte{0x12, 0x34, 0x56, 0x78}
	var stream []byte
	for i := range 64 {
		stream = append(stream, clientFrame(true, OpText, bytes.Repeat([]byte{'a' + byte(i%26)}, 40+i*3), m)...)
	}
	buf := make([]byte, len(stream))
	emit := func(Opcode, []byte) error { return nil }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, stream) // Feed unmasks in place
		var p Parser
		for i := 0; i < len(buf); i += 512 {
			if err := p.Feed(buf[i:min(i+512, len(buf))], emit); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFanoutFlush sends one shared frame to 1,000 conns over loopback and waits until every
// client has read it (measured to the last delivery, as centrifuge's drain does). Server and
// clients share the machine's cores.
func BenchmarkFanoutFlush(b *testing.B) {
	const n = 1000
	memtest.RaiseNoFile(b, 3*n+200)
	s := startServer(b, Options{MaxQueueBytes: 64 << 20, MaxQueueFrames: 1 << 20}, nil)
	frame := AppendFrame(nil, OpText, []byte(`{"event":"App\\Events\\Tick","channel":"ticks","data":"{\"n\":1}"}`))
	conns := make([]*Conn, n)
	var read atomic.Int64
	for i := range conns {
		raw, br := rawDial(b, s.addr, 0)
		conns[i], _ = s.next(b)
		go func() {
			_, _ = io.Copy(io.Discard, countingReader{br, &read})
			_ = raw.Close()
		}()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; b.Loop(); i++ {
		for _, c := range conns {
			if err := c.Send(frame); err != nil {
				b.Fatal(err)
			}
		}
		want := int64(i) * int64(n) * int64(len(frame))
		for read.Load() < want {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
	for _, c := range conns {
		c.Close(1001, "")
	}
	time.Sleep(10 * time.Millisecond)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
