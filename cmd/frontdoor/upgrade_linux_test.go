package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	p.waitLog(t, "the new process listens")
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
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("pid file gone after upgrade: %v", err)
	}
	var newPid int
	fmt.Sscan(string(raw), &newPid)
	if newPid == 0 || newPid == p.cmd.Process.Pid {
		t.Fatalf("pid file = %q, old pid %d", raw, p.cmd.Process.Pid)
	}
	t.Cleanup(func() { _ = syscall.Kill(newPid, syscall.SIGKILL) })
	c2 := dialPusher(t, addr, "key1") // the new process answers on the same port
	ping(t, c2)
}
