package ws

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// raiseNoFile lifts RLIMIT_NOFILE to at least need, or skips.
func raiseNoFile(t testing.TB, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		lim.Max = need // needs CAP_SYS_RESOURCE; refused otherwise
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("need %d file descriptors, cannot raise RLIMIT_NOFILE: %v", need, err)
	}
}

// rssBytes reads the resident set size from /proc/self/statm.
func rssBytes(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func heapStack() (int64, int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.StackInuse)
}

// TestIdleMemory holds 10,000 idle adopted conns and reports the server's memory per conn
// (DESIGN target: below 11 KB). It reports and does not assert a number: the figure depends on
// the Go runtime and the kernel. The clients run in a child process (this test binary re-run as
// a helper), so the deltas are the server's alone.
//
//	go test -run TestIdleMemory -v ./pusher/internal/ws/
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips opening 10,000 WebSocket conns")
	}
	const n = 10000
	raiseNoFile(t, n+500)
	s := startServer(t, Options{}, nil)

	// Warm the server (fasthttp worker pool, first upgrades) before the baseline.
	warm := startClients(t, s.addr, 50)
	for range 50 {
		s.next(t)
	}
	heap0, stack0 := heapStack()
	rss0 := rssBytes(t)

	clients := startClients(t, s.addr, n)
	conns := make([]*Conn, 0, n)
	for range n {
		c, _ := s.next(t)
		conns = append(conns, c)
	}
	if err := clients.ready(); err != nil {
		t.Fatal(err)
	}
	heap1, stack1 := heapStack()
	rss1 := rssBytes(t)
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
	runtime.KeepAlive(conns)
	runtime.KeepAlive(warm)
}

// clients is a child process holding idle WebSocket client conns.
type clients struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stdin io.Closer
}

func (c *clients) ready() error {
	line, err := c.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("client process: %v", err)
	}
	if strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("client process: %q", line)
	}
	return nil
}

func startClients(t *testing.T, addr string, n int) *clients {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$", "-test.v=false")
	cmd.Env = append(os.Environ(), "WS_IDLE_CLIENTS_ADDR="+addr, "WS_IDLE_CLIENTS_N="+strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &clients{cmd: cmd, out: bufio.NewReader(out), stdin: stdin}
}

// TestIdleClientsHelper is the client process of TestIdleMemory; it does nothing in a normal run.
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("WS_IDLE_CLIENTS_ADDR")
	if addr == "" {
		t.Skip("helper process for TestIdleMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("WS_IDLE_CLIENTS_N"))
	raiseNoFile(t, uint64(n)+500)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, _ := rawDial(t, addr, 0)
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	runtime.KeepAlive(conns)
}
