package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// SIGUSR2 replaces the process with a new one on the same port; clients of the old one are told to
// reconnect and find the new one there.
func TestBinaryUpgradeWithoutDowntime(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	pidFile := filepath.Join(dir, "frontdoor.pid")
	p := startFrontdoor(t, dir, "serve", "--listen", addr, "--admin", "off", "--pid-file", pidFile,
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p.waitLog(t, `"listening"`)
	c := dialPusher(t, addr, "key1")

	out, err := exec.Command(frontdoorBin(t), "restart", "--pid-file", pidFile).CombinedOutput()
	if err != nil {
		t.Fatalf("frontdoor restart: %v\n%s", err, out)
	}
	// restart returns once the new process listens: the pid file is already its.
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("pid file gone after upgrade: %v", err)
	}
	var newPid int
	fmt.Sscan(string(raw), &newPid)
	if newPid == 0 || newPid == p.cmd.Process.Pid {
		t.Fatalf("pid file = %q when restart returned, old pid %d", raw, p.cmd.Process.Pid)
	}
	t.Cleanup(func() { _ = syscall.Kill(newPid, syscall.SIGKILL) })
	if !strings.Contains(string(out), fmt.Sprintf("pid %d serves", newPid)) {
		t.Fatalf("restart output does not name the new process %d:\n%s", newPid, out)
	}
	p.waitLog(t, "the new process listens", fmt.Sprintf(`"pid":%d`, p.cmd.Process.Pid))
	// Both processes write to one log; every line says whose it is.
	p.waitLog(t, `"listening"`, fmt.Sprintf(`"pid":%d`, newPid))
	for _, l := range strings.Split(p.log(), "\n") {
		if strings.HasPrefix(l, "{") && !strings.Contains(l, `"pid":`) {
			t.Errorf("log line without pid: %s", l)
		}
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != 4200 {
				t.Fatalf("old socket: want close 4200, got %v", err)
			}
			break
		}
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("old process exit: %v", err)
	}
	c2 := dialPusher(t, addr, "key1") // the new process answers on the same port
	ping(t, c2)
}

// A new process that cannot start: `frontdoor restart` says so with the reason and exits non-zero,
// and the old process keeps serving.
func TestRestartReportsAFailedUpgrade(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	pidFile := filepath.Join(dir, "frontdoor.pid")
	cfg := filepath.Join(dir, "frontdoor.yaml")
	if err := os.WriteFile(cfg, []byte("apps:\n  - {id: one, key: key-one, secret: secret-one}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFrontdoor(t, dir, "serve", "--listen", addr, "--admin", "off", "--pid-file", pidFile, "--config", cfg)
	p.waitLog(t, `"listening"`)
	c := dialPusher(t, addr, "key-one")
	// The new process will read this and refuse to start.
	if err := os.WriteFile(cfg, []byte("apps:\n  - {id: one, key: key-one, secret: secret-one}\nlisten_addr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(frontdoorBin(t), "restart", "--pid-file", pidFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("restart exited 0 although the new process did not come up")
	}
	for _, want := range []string{"the upgrade failed", "keeps serving", "exit status 2"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("restart's message lacks %q: %s", want, stderr.String())
		}
	}
	ping(t, c) // the old process and its sockets are still there
}
