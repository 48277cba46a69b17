package bench

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// startFrontdoor builds ./cmd/frontdoor and starts it on a free loopback port, with extra flags;
// the process dies with the test (Pdeathsig) and is stopped in Cleanup.
func startFrontdoor(t *testing.T, extra ...string) (addr string, pid int) {
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
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--admin", "off", "--env-file", "",
		"--app-id", "smoke", "--app-key", "smoke-key", "--app-secret", "smoke-secret", "--log-level", "warn"}, extra...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = testenv.DieWithParent()
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

// startRedis runs a real redis-server on a free loopback port without persistence.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("FRONTDOOR_REQUIRE_INTEGRATION") != "" {
			t.Fatal("redis-server not installed (apt-get install redis-server); FRONTDOOR_REQUIRE_INTEGRATION is set")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not answering on %s", addr)
		}
	}
}

// TestFanoutAcrossTwoNodes: with --node, subscribers are spread over two frontdoor processes
// sharing a real redis-server while the publishes go to the first; every subscriber, on either
// node, gets every message once and in order, and both processes are sampled.
func TestFanoutAcrossTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts frontdoor and redis-server; skipped with -short")
	}
	redisURL := "redis://" + startRedis(t)
	a, pidA := startFrontdoor(t, "--redis", redisURL)
	b, pidB := startFrontdoor(t, "--redis", redisURL)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sizes := SmallSizes
	sizes.Subscribers, sizes.Rate, sizes.Duration = 200, 50, 2*time.Second
	rep, err := Run(ctx, Options{
		Target: Target{URL: "ws://" + a, Nodes: []string{"ws://" + b}, AppID: "smoke", Key: "smoke-key",
			Secret: "smoke-secret", ServerPIDs: []int{pidA, pidB}, Label: "two nodes"},
		Sizes: sizes, Small: true,
	}, "fanout")
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Result("fanout")
	if res == nil {
		t.Fatal("no fanout result")
	}
	for key, want := range map[string]float64{"subscribed": 200, "lost": 0, "duplicated": 0, "out_of_order": 0,
		"publish_failed": 0, "incomplete_messages": 0} {
		if v, ok := res.Metric(key); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; errors %v", key, v, ok, want, res.Errors)
		}
	}
	expected, _ := res.Metric("expected")
	delivered, _ := res.Metric("delivered")
	if expected < 200*20 || delivered != expected {
		t.Errorf("delivered %v of %v expected (want every one, at least 20 messages to 200 subscribers)", delivered, expected)
	}
	if !strings.Contains(rep.Target, b) {
		t.Errorf("report target %q does not name the second node", rep.Target)
	}

	// Control: with a second server outside the cluster, the half of the subscribers dialed to it
	// never get the messages, so the split is real.
	lone, _ := startFrontdoor(t)
	rep, err = Run(ctx, Options{
		Target: Target{URL: "ws://" + a, Nodes: []string{"ws://" + lone}, AppID: "smoke", Key: "smoke-key",
			Secret: "smoke-secret", ServerPIDs: []int{pidA}},
		Sizes: sizes, Small: true,
	}, "fanout")
	if err != nil {
		t.Fatal(err)
	}
	res = rep.Result("fanout")
	lost, _ := res.Metric("lost")
	expected, _ = res.Metric("expected")
	if lost < expected*0.4 || lost > expected*0.6 {
		t.Errorf("lone second server: %v of %v lost, want about half (the subscribers dialed to it)", lost, expected)
	}
}
