package ws

import (
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/frontdoorhq/frontdoor/pusher/internal/memtest"
)

// TestIdleMemory holds 10,000 idle adopted conns and reports the server's memory per conn. The
// clients run in a child process (this test binary re-run as a helper), so the deltas are the
// server's alone. Heap + stack measured 1.27–1.30 KB per conn (docs/benchmarks.md, with and
// without -race); the bound, maxIdleConnBytes, leaves 50 % for Go runtime and kernel drift,
// so a regression of a few hundred bytes per conn fails here. RSS is reported, not bounded: it
// includes the race detector's shadow memory under -race.
//
//	go test -run TestIdleMemory -v ./pusher/internal/ws/
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips opening 10,000 WebSocket conns")
	}
	if !EpollDriver {
		t.Skip("the portable driver keeps a read goroutine per conn: the bound is the epoll driver's")
	}
	const n = 10000
	memtest.RaiseNoFile(t, n+500)
	s := startServer(t, Options{}, nil)

	// Warm the server (fasthttp worker pool, first upgrades) before the baseline.
	warm := memtest.StartChild(t, "TestIdleClientsHelper", "WS_IDLE_CLIENTS_ADDR="+s.addr, "WS_IDLE_CLIENTS_N=50")
	for range 50 {
		s.next(t)
	}
	heap0, stack0 := memtest.HeapStack()
	rss0 := memtest.RSS(t)

	clients := memtest.StartChild(t, "TestIdleClientsHelper", "WS_IDLE_CLIENTS_ADDR="+s.addr, "WS_IDLE_CLIENTS_N="+strconv.Itoa(n))
	conns := make([]*Conn, 0, n)
	for range n {
		c, _ := s.next(t)
		conns = append(conns, c)
	}
	if err := clients.Ready(); err != nil {
		t.Fatal(err)
	}
	heap1, stack1 := memtest.HeapStack()
	rss1 := memtest.RSS(t)
	dh, ds := float64(heap1-heap0)/n, float64(stack1-stack0)/n
	t.Logf("%d idle conns, server side: HeapInuse %.0f B/conn + StackInuse %.0f B/conn = %.0f B/conn; RSS %.0f B/conn",
		n, dh, ds, dh+ds, float64(rss1-rss0)/n)
	if path := os.Getenv("WS_IDLE_HEAPPROFILE"); path != "" {
		// Where the bytes go: go tool pprof -sample_index=inuse_space -top <test binary> path
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	for _, c := range conns {
		if c.LastActivity() == 0 {
			t.Fatal("conn not adopted")
		}
	}
	if per := dh + ds; per > maxIdleConnBytes {
		t.Fatalf("%.0f bytes of heap and stack per idle conn, over %d (measured 1,300)", per, maxIdleConnBytes)
	}
	runtime.KeepAlive(conns)
	runtime.KeepAlive(warm)
}

// maxIdleConnBytes bounds an idle adopted conn's heap + stack: the measured 1.3 KB plus 50 %.
const maxIdleConnBytes = 2000

// TestIdleClientsHelper is the client process of TestIdleMemory; it does nothing in a normal run.
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("WS_IDLE_CLIENTS_ADDR")
	if addr == "" {
		t.Skip("helper process for TestIdleMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("WS_IDLE_CLIENTS_N"))
	memtest.RaiseNoFile(t, uint64(n)+500)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, _ := rawDial(t, addr, 0)
		conns = append(conns, c)
	}
	memtest.Hold(conns)
}
