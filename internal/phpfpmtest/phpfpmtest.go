// Package phpfpmtest starts a real php-fpm for tests and benchmarks outside proxy/ (whose own
// harness, proxy/phpfpm_test.go, has more pools and options): one static pool on a unix socket,
// output buffering off so flush() reaches the client, stopped when the test ends.
package phpfpmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// Start runs php-fpm8.2 with workers static children and returns its fastcgi:// URL. A missing
// php-fpm skips the test (fails under FRONTDOOR_REQUIRE_INTEGRATION=1).
func Start(t testing.TB, workers int) string {
	t.Helper()
	bin := ""
	for _, n := range []string{"php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm"} {
		if p, err := exec.LookPath(n); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		testenv.Missing(t, "php-fpm8.2", "not installed", "Debian: apt-get install -y php8.2-fpm")
	}
	dir, err := os.MkdirTemp("", "fpm") // a unix socket path must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "php.sock")
	conf := fmt.Sprintf(`[global]
pid = php-fpm.pid
error_log = php-fpm.log
[www]
listen = %s
listen.mode = 0666
pm = static
pm.max_children = %d
clear_env = yes
php_admin_value[output_buffering] = 0
`, sock, workers)
	confPath := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-O", "-y", confPath, "-p", dir}
	if os.Geteuid() == 0 {
		args = append(args, "-R")
	}
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "fastcgi://" + sock
		}
		select {
		case <-done:
			t.Fatalf("php-fpm exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm not listening: %s", out)
		}
	}
}

// lockedBuffer is the shared log sink of internal/testenv.
type lockedBuffer = testenv.LogBuffer
