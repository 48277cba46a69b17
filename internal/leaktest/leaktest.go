// Package leaktest checks that a test leaves no goroutine of the code under test behind: every
// goroutine a frontdoor package starts has an owner that stops it (docs/architecture.md
// "Goroutines and who owns them"). It compares goroutine stacks, so it needs no dependency.
package leaktest

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Check records the goroutines running now and, when the test ends, fails it if a goroutine that
// was not running then is still running code from one of the packages named by importPath
// prefixes (e.g. "github.com/frontdoorhq/frontdoor/pusher"). Stragglers get a few seconds to end.
// Call it first in the test so its cleanup runs after the test's own.
func Check(t testing.TB, importPaths ...string) {
	t.Helper()
	before := ids()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := leaked(before, importPaths)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) outlived the test:\n\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// id is the "goroutine N" head of a stack.
func id(stack string) string {
	head, _, _ := strings.Cut(stack, " [")
	return head
}

func ids() []string {
	var out []string
	for _, s := range stacks() {
		out = append(out, id(s))
	}
	return out
}

func leaked(before, importPaths []string) []string {
	var out []string
	for _, s := range stacks() {
		if slices.Contains(before, id(s)) || strings.Contains(s, "leaktest.leaked") {
			continue
		}
		for _, p := range importPaths {
			if strings.Contains(s, p+".") || strings.Contains(s, p+"/") {
				out = append(out, s)
				break
			}
		}
	}
	return out
}
