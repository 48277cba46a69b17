package bench

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startFrontdoor builds ./cmd/frontdoor and starts it on a free loopback port; the process dies
// with the test (Pdeathsig) and is stopped in Cleanup.
func startFrontdoor(t *testing.T) (addr string, pid int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "frontdoor")
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	build := exec.Command(gobin, "build", "-o", bin, "../cmd/frontdoor")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/frontdoor: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--listen", addr, "--admin", "off", "--env-file", "",
		"--app-id", "smoke", "--app-key", "smoke-key", "--app-secret", "smoke-secret", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("frontdoor output:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, cmd.Process.Pid
		}
		select {
		case err := <-exited:
			t.Fatalf("frontdoor exited before listening: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("frontdoor not listening on %s after 15 s\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSuiteSmallAgainstFrontdoor runs `bench suite --small` through the package API against a
// real frontdoor and checks the report is sane: every scenario ran, work was done, and nothing
// was lost, duplicated, reordered or miscounted at this small size.
func TestSuiteSmallAgainstFrontdoor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts frontdoor; skipped with -short")
	}
	addr, pid := startFrontdoor(t)
	_, port, _ := net.SplitHostPort(addr)
	if found, err := listenerPID(mustAtoi(t, port)); err != nil || found != pid {
		t.Errorf("listenerPID(%s) = %d, %v; want %d", port, found, err, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Target: Target{URL: "ws://" + addr, AppID: "smoke", Key: "smoke-key", Secret: "smoke-secret",
			ServerPIDs: []int{pid}, Label: "frontdoor"},
		Small: true,
	}, "suite")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(Suite) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(Suite))
	}
	type check struct {
		key  string
		want func(float64) bool
		desc string
	}
	positive := func(v float64) bool { return v > 0 }
	zero := func(v float64) bool { return v == 0 }
	checks := map[string][]check{
		"connections": {{"established", func(v float64) bool { return v == float64(SmallSizes.Connections) }, "all sockets"},
			{"failed", zero, "0"}, {"handshakes_per_s", positive, ">0"}, {"pong_missing", zero, "0"}, {"dropped", zero, "0"},
			{"server_bytes_per_socket", positive, ">0"}},
		"fanout-throughput": {{"delivered", positive, ">0"}, {"lost", zero, "0"}, {"duplicated", zero, "0"},
			{"out_of_order", zero, "0"}, {"publish_failed", zero, "0"}, {"incomplete_messages", zero, "0"}},
		"fanout-latency": {{"delivered", positive, ">0"}, {"lost", zero, "0"}, {"duplicated", zero, "0"}, {"out_of_order", zero, "0"}},
		"publish":        {{"requests", positive, ">0"}, {"errors", zero, "0"}},
		"presence": {{"joins", positive, ">0"}, {"missing_added", zero, "0"}, {"missing_removed", zero, "0"},
			{"member_anomalies", zero, "0"}, {"bad_member_lists", zero, "0"}, {"api_count_wrong", zero, "0"}},
		"churn": {{"cycles", positive, ">0"}, {"errors", zero, "0"}},
	}
	for name, cs := range checks {
		res := rep.Result(name)
		if res == nil {
			t.Errorf("no %s result", name)
			continue
		}
		for _, c := range cs {
			v, ok := res.Metric(c.key)
			if !ok || !c.want(v) {
				t.Errorf("%s: %s = %v (present %v), want %s; errors: %v", name, c.key, v, ok, c.desc, res.Errors)
			}
		}
		if res.Server.RSSPeak <= 0 || res.Client.CPUSeconds <= 0 || len(res.Series) == 0 {
			t.Errorf("%s: no resource figures: server %+v client %+v, %d samples", name, res.Server, res.Client, len(res.Series))
		}
	}
	if fo := rep.Result("fanout-throughput"); fo != nil {
		if l := fo.Latencies[0]; l.Count == 0 || l.P99 <= 0 || l.P99 > l.Max {
			t.Errorf("fanout latency summary not sane: %+v", l)
		}
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, []*Report{rep}); err != nil {
		t.Fatal(err)
	}
	wellFormed(t, page.Bytes())
	if testing.Verbose() {
		rep.WriteText(os.Stdout)
	}
}
