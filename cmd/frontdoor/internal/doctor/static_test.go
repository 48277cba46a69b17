package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyFixture copies testdata/<name> into a temporary project and pins every mtime (a checkout
// does not keep them), so checks that compare file times are deterministic.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		return os.Chtimes(target, base, base)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func noEnv(string) (string, bool) { return "", false }

func checkFixture(t *testing.T, dir string, lookup func(string) (string, bool)) *Report {
	t.Helper()
	rep, err := Check(context.Background(), Options{EnvFile: filepath.Join(dir, ".env"), Offline: true, lookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func dump(rep *Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		b.WriteString("\n  ")
		fmt.Fprintf(&b, "%s %s %s:%d %s (fix: %s)", f.Severity, f.Code, filepath.Base(f.File), f.Line, f.Message, f.Fix)
	}
	return b.String()
}

type want struct {
	sev  Severity
	code string
	line int
	file string // base name of the finding's file when not the .env
	fix  string // exact Fix, when the test pins it
}

// TestFixtures: one fixture per finding (laravel-config.md §5 and issue 8), each asserting the
// code, the severity and the line the user must edit.
func TestFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		want    []want
		setup   func(t *testing.T, dir string)
	}{
		{fixture: "broadcast-driver-ignored", want: []want{{Error, "broadcast-driver-ignored", 7, "", "replace line 7 with: BROADCAST_CONNECTION=reverb"}}},
		{fixture: "broadcast-connection-ignored", want: []want{{Error, "broadcast-connection-ignored", 7, "", ""}}},
		{fixture: "broadcast-config-file", want: []want{{Error, "broadcast-connection-ignored", 7, "", ""}}},
		{fixture: "broadcast-key-ambiguous", want: []want{{Warning, "broadcast-key-ambiguous", 8, "", ""}}},
		{fixture: "duplicate-key", want: []want{{Warning, "duplicate-key", 23, "", "delete line 7 and keep line 23: BROADCAST_CONNECTION=reverb"}}},
		{fixture: "reverb-port-confusion", want: []want{{Warning, "reverb-port-confusion", 14, "", ""}}},
		{fixture: "reverb-host-loopback", want: []want{{Error, "reverb-host-loopback", 13, "", ""}}},
		{fixture: "vite-host-loopback", want: []want{{Error, "vite-host-loopback", 18, "", ""}}},
		{fixture: "vite-missing", want: []want{{Error, "vite-missing", 0, "", ""}}},
		{fixture: "vite-mismatch", want: []want{{Error, "vite-mismatch", 17, "", ""}}},
		{fixture: "vite-unresolved", want: []want{{Error, "vite-unresolved", 18, "", ""}}},
		{fixture: "vite-stale-build", want: []want{{Warning, "vite-stale-build", 0, "assets", ""}}},
		{fixture: "app-credentials-empty", want: []want{{Error, "app-credentials-empty", 12, "", ""}}},
		{fixture: "app-credentials-short", want: []want{{Warning, "app-credentials-short", 12, "", ""}}},
		{fixture: "app-credentials-missing", want: []want{{Error, "app-credentials-missing", 0, "", ""}}},
		{fixture: "scheme-http-production", want: []want{{Warning, "scheme-http-production", 15, "", ""}}},
		{fixture: "scheme-port-mismatch", want: []want{{Error, "scheme-port-mismatch", 15, "", ""}}},
		{fixture: "invalid-scheme", want: []want{{Error, "invalid-scheme", 15, "", ""}}},
		{fixture: "pusher-host-empty", want: []want{{Warning, "pusher-host-empty", 25, "", ""}}},
		{fixture: "pusher-reverb-disagree", want: []want{{Error, "pusher-reverb-disagree", 23, "", ""}}},
		{fixture: "broadcaster-not-reverb", want: []want{{Warning, "broadcaster-not-reverb", 7, "", ""}}},
		{fixture: "broadcaster-sdk-missing", want: []want{{Error, "broadcaster-sdk-missing", 0, "composer.lock", "composer require pusher/pusher-php-server"}}},
		{fixture: "route-conflict", want: []want{{Warning, "route-conflict", 0, "web.php", ""}}},
		{fixture: "queue-worker-needed", want: []want{{Info, "queue-worker-needed", 8, "", ""}}},
		{fixture: "origin-not-allowed", want: []want{{Error, "origin-not-allowed", 22, "", `REVERB_ALLOWED_ORIGINS="admin.example.com, *.example.org, app.example.com"`}}},
		{fixture: "env-parse-error", want: []want{{Error, "env-parse-error", 1, "", `APP_NAME="My Shop"`}}},
		{fixture: "reverb-host-loopback-split", want: []want{{Info, "reverb-host-loopback", 13, "", ""}}},
		{fixture: "config-cache-old", want: []want{{Warning, "config-cache-stale", 0, "config.php", ""}}, setup: func(t *testing.T, dir string) {
			old := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(filepath.Join(dir, "bootstrap", "cache", "config.php"), old, old); err != nil {
				t.Fatal(err)
			}
		}},
		{fixture: "config-cache-differs", want: []want{{Error, "config-cache-stale", 0, "config.php", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			dir := copyFixture(t, tt.fixture)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			rep := checkFixture(t, dir, noEnv)
			for _, w := range tt.want {
				found := false
				for _, f := range rep.Findings {
					file := ".env"
					if w.file != "" {
						file = w.file
					}
					if f.Code == w.code && f.Severity == w.sev && f.Line == w.line && filepath.Base(f.File) == file && (w.fix == "" || f.Fix == w.fix) {
						found = true
						if f.Message == "" || (f.Severity != Info && f.Fix == "") {
							t.Errorf("finding %s lacks a message or a fix: %+v", f.Code, f)
						}
					}
				}
				if !found {
					t.Errorf("want %s %s at line %d; got:%s", w.sev, w.code, w.line, dump(rep))
				}
			}
		})
	}
}

// TestCleanFixtures: a correct frontdoor .env (laravel-config.md §7) and its variants raise
// neither errors nor warnings; this is what keeps the checks from crying wolf.
func TestCleanFixtures(t *testing.T) {
	for _, name := range []string{"clean", "vite-fresh-build", "origin-allowed", "reverb-host-loopback-split", "route-no-conflict"} {
		t.Run(name, func(t *testing.T) {
			rep := checkFixture(t, copyFixture(t, name), noEnv)
			if rep.Count(Error)+rep.Count(Warning) != 0 {
				t.Fatalf("clean fixture has findings:%s", dump(rep))
			}
		})
	}
}

func TestSecretsStayOutOfOutput(t *testing.T) {
	dir := copyFixture(t, "config-cache-differs")
	var out bytes.Buffer
	code := Run(context.Background(), Options{EnvFile: filepath.Join(dir, ".env"), Offline: true, lookupEnv: noEnv}, &out)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out.String())
	}
	for _, secret := range []string{"7hd0s2kq9vzm4xwe1rtb", "0ldsecret0ldsecret00"} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("output contains the secret %q:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), "REVERB_APP_SECRET: cached (secret, 20 characters)") {
		t.Fatalf("output does not say which secret differs:\n%s", out.String())
	}
}

func TestEnvironmentOverride(t *testing.T) {
	dir := copyFixture(t, "clean")
	rep := checkFixture(t, dir, func(k string) (string, bool) {
		if k == "REVERB_HOST" {
			return "ws.example.net", true
		}
		return "", false
	})
	for _, f := range rep.Findings {
		if f.Code == "env-overrides-file" && f.Line == 13 && f.Severity == Info && strings.Contains(f.Message, "ws.example.net") {
			return
		}
	}
	t.Fatalf("no env-overrides-file finding:%s", dump(rep))
}

func TestRunOutputAndExitCodes(t *testing.T) {
	ctx := context.Background()
	clean := filepath.Join(copyFixture(t, "clean"), ".env")
	bad := filepath.Join(copyFixture(t, "broadcast-driver-ignored"), ".env")

	var out bytes.Buffer
	if code := Run(ctx, Options{EnvFile: clean, Offline: true, lookupEnv: noEnv}, &out); code != 0 {
		t.Fatalf("clean: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := Run(ctx, Options{EnvFile: bad, Offline: true, lookupEnv: noEnv}, &out); code != 1 {
		t.Fatalf("bad: exit %d\n%s", code, out.String())
	}
	text := out.String()
	for _, s := range []string{"Errors (1)", bad + ":7: [broadcast-driver-ignored]", "fix: replace line 7 with: BROADCAST_CONNECTION=reverb", "nofile-limit"} {
		if !strings.Contains(text, s) {
			t.Fatalf("text output lacks %q:\n%s", s, text)
		}
	}

	out.Reset()
	if code := Run(ctx, Options{EnvFile: bad, Offline: true, JSON: true, lookupEnv: noEnv}, &out); code != 1 {
		t.Fatalf("json: exit %d", code)
	}
	var doc struct {
		EnvFile  string    `json:"env_file"`
		Errors   int       `json:"errors"`
		Findings []Finding `json:"findings"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("json output: %v\n%s", err, out.String())
	}
	if doc.Errors != 1 || doc.EnvFile != bad || doc.Findings[0].Code != "broadcast-driver-ignored" || doc.Findings[0].Line != 7 {
		t.Fatalf("json document: %+v", doc)
	}

	out.Reset()
	if code := Run(ctx, Options{EnvFile: filepath.Join(t.TempDir(), ".env"), Offline: true, lookupEnv: noEnv}, &out); code != 1 || !strings.Contains(out.String(), "env-file-missing") {
		t.Fatalf("missing file: exit %d\n%s", code, out.String())
	}
	for _, u := range []string{"ftp://x", "https://", "http://h:99999"} {
		out.Reset()
		if code := Run(ctx, Options{URL: u}, &out); code != 2 {
			t.Fatalf("--url %s: exit %d, want 2\n%s", u, code, out.String())
		}
	}
}

// TestOriginMatches pins doctor's pattern matching to package pusher's: a host, "*" for any
// run of characters, case-insensitive; a pattern with a scheme matches nothing.
func TestOriginMatches(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"*", "app.example.com", true},
		{"app.example.com", "APP.example.com", true},
		{"*.example.com", "app.example.com", true},
		{"*.example.com", "example.com", false},
		{"https://app.example.com", "app.example.com", false},
		{"", "app.example.com", false},
	}
	for _, tt := range tests {
		if got := originMatches(tt.pattern, tt.host); got != tt.want {
			t.Errorf("originMatches(%q, %q) = %v", tt.pattern, tt.host, got)
		}
	}
}
