package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers/workerstest"
)

// A frontdoor killed outright (SIGKILL, OOM killer) leaves no orphan workers: Pdeathsig.
func TestKilledFrontdoorTakesItsWorkers(t *testing.T) {
	p, admin, _ := serveWithWorker(t)
	pids := runningPIDs(t, admin)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.wait(t)
	waitUntil(t, "the workers to die with frontdoor", func() bool {
		return workerstest.Gone(pids[0]) && workerstest.Gone(pids[1])
	})
}

// frontdoor restart: the new process runs its own copies once it listens; the old one stops its
// copies (the job in progress finishes) before it exits, so the two sets overlap by one job.
func TestBinaryUpgradeHandsOverWorkers(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "frontdoor.pid")
	p, admin, jobs := serveWithWorker(t, "--pid-file", pidFile)
	old := runningPIDs(t, admin)
	workerstest.AddJob(t, jobs, "job-slow", 1500)
	p.waitLog(t, `"message":"start job-slow"`)

	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("old process exit: %v", err)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var newPid int
	fmt.Sscan(string(raw), &newPid)
	if newPid == 0 || newPid == p.cmd.Process.Pid {
		t.Fatalf("pid file = %q after the upgrade", raw)
	}
	t.Cleanup(func() { _ = syscall.Kill(newPid, syscall.SIGKILL) })
	// The old process exited only after its copies did, and the job in progress was not cut short.
	for _, pid := range old {
		if !workerstest.Gone(pid) {
			t.Errorf("old worker pid %d outlived the old process", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(jobs, "done", "job-slow")); err != nil {
		t.Fatal("the old worker's job was cut short by the upgrade")
	}
	waitUntil(t, "the new process's copies", func() bool {
		now := runningPIDs(t, admin)
		return len(now) == 2 && !slices.Contains(now, old[0]) && !slices.Contains(now, old[1])
	})
	workerstest.AddJob(t, jobs, "job-after", 0)
	waitUntil(t, "the new copies to work", func() bool {
		_, err := os.Stat(filepath.Join(jobs, "done", "job-after"))
		return err == nil
	})
}
