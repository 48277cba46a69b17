package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	const rev = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"
	stamp := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	tests := []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		wantV, wantC    string
	}{
		{"plain go build, clean tree", "dev", "", stamp("false"), "dev", "1a2b3c4d5e6f"},
		{"plain go build, uncommitted changes", "dev", "", stamp("true"), "dev", "1a2b3c4d5e6f-dirty"},
		{"ldflags win", "v1.2.3", "abc1234", stamp("true"), "v1.2.3", "abc1234"},
		{"go install @version", "dev", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0", "unknown"},
		{"pseudo-version of a checkout", "dev", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261204142008-1a2b3c4d5e6f+dirty"}}, "dev", "unknown"},
		{"no build info", "dev", "", nil, "dev", "unknown"},
	}
	for _, tt := range tests {
		v, c := describeBuild(tt.version, tt.commit, tt.bi)
		if v != tt.wantV || c != tt.wantC {
			t.Errorf("%s: got %q, %q; want %q, %q", tt.name, v, c, tt.wantV, tt.wantC)
		}
	}
}

// A plain `go build` in a git checkout says which commit it is, and that the tree was modified
// (issue #20: such a binary reported "commit unknown").
func TestPlainBuildReportsCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(out))
	// A fresh clone: Go stamps only a checkout whose .git is a directory (a worktree's is a file).
	clone := filepath.Join(t.TempDir(), "src")
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("", "git", "clone", "--quiet", "--no-hardlinks", root, clone)
	head := run(clone, "git", "rev-parse", "HEAD")
	// The working tree over it (this code, uncommitted changes included): a developer's build.
	for _, f := range strings.Split(run(root, "git", "ls-files", "--cached", "--others", "--exclude-standard"), "\n") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the working tree
		}
		_ = os.MkdirAll(filepath.Dir(filepath.Join(clone, f)), 0o755)
		if err := os.WriteFile(filepath.Join(clone, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(clone, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "frontdoor")
	// -buildvcs=true: GOFLAGS may turn stamping off, as it does on some CI machines.
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/frontdoor")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	got := run("", bin, "version")
	if want := "frontdoor dev (commit " + head[:12] + "-dirty,"; !strings.HasPrefix(got, want) {
		t.Fatalf("version = %q, want it to contain %q", got, want)
	}
}
