// Package workerstest holds what tests of supervised workers share: the PHP stand-in for
// queue:work (../testdata/worker.php, documented there) and the checks around it.
package workerstest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// NeedPHP returns the php binary, which must have pcntl (Debian's php-cli does). Missing, the
// test skips, or fails under FRONTDOOR_REQUIRE_INTEGRATION=1.
func NeedPHP(t testing.TB) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err == nil {
		if exec.Command(php, "-r", `exit(function_exists("pcntl_async_signals") ? 0 : 1);`).Run() != nil {
			err = errors.New("php has no pcntl extension")
		}
	}
	if err != nil {
		if os.Getenv("FRONTDOOR_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("php-cli with pcntl needed (apt-get install php8.2-cli): %v; FRONTDOOR_REQUIRE_INTEGRATION=1", err)
		}
		t.Skipf("php-cli with pcntl needed: %v", err)
	}
	return php
}

// Script is the absolute path of the PHP worker.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "worker.php")
}

// AddJob puts a job in dir that takes ms milliseconds (0: the worker's default, 200 ms). It is
// written aside and renamed in, so the worker never sees half a file.
func AddJob(t testing.TB, dir, name string, ms int) {
	t.Helper()
	content := ""
	if ms > 0 {
		content = strconv.Itoa(ms)
	}
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
