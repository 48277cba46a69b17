// Package memtest measures a server's memory per idle connection in tests: the clients live in
// a child process (the test binary re-run as a helper), so the parent's deltas are the server's.
package memtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/frontdoorhq/frontdoor/internal/rlimit"
	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// RaiseNoFile lifts RLIMIT_NOFILE to at least need, or skips the test.
func RaiseNoFile(t testing.TB, need uint64) {
	t.Helper()
	cur, hard, err := rlimit.NoFile()
	if err != nil {
		t.Skipf("open-file limit: %v", err)
	}
	if cur >= need {
		return
	}
	if err := rlimit.SetNoFile(need, max(hard, need)); err != nil { // a higher hard limit needs CAP_SYS_RESOURCE
		t.Skipf("need %d file descriptors, cannot raise RLIMIT_NOFILE: %v", need, err)
	}
}

// RSS is this process's resident set size, from /proc/self/statm.
func RSS(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// HeapStack is live heap and stack in use after four GCs: each GC halves an idle goroutine's
// oversized stack at most once, and a long-running server gets many.
func HeapStack() (heap, stack int64) {
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.StackInuse)
}

// Child is a helper process holding client connections.
type Child struct {
	out *bufio.Reader
}

// StartChild re-runs the test binary with only the test named helper, with env added; the
// helper opens its connections, calls Hold, and lives until the parent test ends.
func StartChild(t *testing.T, helper string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.v=false")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = testenv.DieWithParent()
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
	return &Child{out: bufio.NewReader(out)}
}

// Ready waits until the child has all its connections open.
func (c *Child) Ready() error {
	line, err := c.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("client process: %v", err)
	}
	if strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("client process: %q", line)
	}
	return nil
}

// Hold is the child's side: report ready, then keep v (the connections) alive until the parent
// closes stdin.
func Hold(v any) {
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(v)
}
