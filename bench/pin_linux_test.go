package bench

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// affinity is the CPUs every thread of pid may run on, one set per thread.
func affinity(t *testing.T, pid int) []unix.CPUSet {
	t.Helper()
	var out []unix.CPUSet
	for _, tid := range threads(pid) {
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &s); err == nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no threads of pid %d", pid)
	}
	return out
}

func only(s unix.CPUSet, cpu int) bool { return s.Count() == 1 && s.IsSet(cpu) }

// --pin both runs each scenario unpinned and then pinned against a real frontdoor: while pinned,
// every thread of the client is on CPU 0 and every thread of the server on CPU 1; afterwards both
// are back on all their CPUs, and the report says which run was which.
func TestPinBoth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts frontdoor; skipped with -short")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: nothing to pin to")
	}
	addr, pid := startFrontdoor(t)
	before := affinity(t, pid)[0]

	p, err := pin([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range affinity(t, pid) {
		if !only(s, pinServerCPU) {
			t.Errorf("a server thread may run on %d CPUs, want CPU %d only", s.Count(), pinServerCPU)
		}
	}
	for _, s := range affinity(t, os.Getpid()) {
		if !only(s, pinClientCPU) {
			t.Errorf("a client thread may run on %d CPUs, want CPU %d only", s.Count(), pinClientCPU)
		}
	}
	p.unpin()
	for _, who := range []int{pid, os.Getpid()} {
		for _, s := range affinity(t, who) {
			if s != before {
				t.Errorf("pid %d: a thread still has %d CPUs after unpin, want %d", who, s.Count(), before.Count())
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Target: Target{URL: "ws://" + addr, AppID: "smoke", Key: "smoke-key", Secret: "smoke-secret", ServerPIDs: []int{pid}},
		Small:  true, Pin: PinBoth,
		Sizes: Sizes{Duration: 500 * time.Millisecond},
	}, "churn")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Name != "churn" || rep.Results[1].Name != "churn-pinned" ||
		rep.Results[0].Params["pinned"] != "false" || rep.Results[1].Params["pinned"] != "true" {
		t.Fatalf("results %+v", rep.Results)
	}
	for _, r := range rep.Results {
		if v, _ := r.Metric("cycles"); v == 0 {
			t.Errorf("%s: no cycles (%v)", r.Name, r.Errors)
		}
	}
	if !strings.Contains(rep.Conditions.Pinned, "CPU 1") {
		t.Errorf("conditions say %q", rep.Conditions.Pinned)
	}
	for _, s := range affinity(t, pid) {
		if s.Count() < 2 {
			t.Error("the server is still pinned after the run")
		}
	}
}

func TestPinRefusesBadValue(t *testing.T) {
	if _, err := Run(context.Background(), Options{Target: Target{URL: "ws://127.0.0.1:1", AppID: "a", Key: "k", Secret: "s"}, Pin: "yes"}, "churn"); err == nil ||
		!strings.Contains(err.Error(), `pin: invalid value "yes"`) {
		t.Fatalf("err %v", err)
	}
}
