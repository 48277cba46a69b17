package workers

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"php artisan queue:work --tries=3", []string{"php", "artisan", "queue:work", "--tries=3"}},
		{"  php\tartisan  horizon ", []string{"php", "artisan", "horizon"}},
		{`sh -c 'php artisan schedule:work >> /tmp/s.log'`, []string{"sh", "-c", "php artisan schedule:work >> /tmp/s.log"}},
		{`php artisan queue:work --queue="high, default"`, []string{"php", "artisan", "queue:work", "--queue=high, default"}},
		{`echo "a \"b\" \\ c"`, []string{"echo", `a "b" \ c`}},
		{`echo "it's" 'say "hi"'`, []string{"echo", "it's", `say "hi"`}},
		{`a\ b c`, []string{"a b", "c"}},
		{`x '' y`, []string{"x", "", "y"}},
		{"", nil},
	}
	for _, c := range cases {
		got, err := SplitCommand(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`php 'unterminated`, `php "unterminated`, `php \`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q): no error", bad)
		}
	}
}

// quote writes word so that SplitCommand reads it back unchanged.
func quote(w string) string { return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'" }

func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"php artisan queue:work --tries=3", `sh -c 'a; b'`, `"x \" y"`, `a\ b`, `'`, `"`, `\`, "a\tb\nc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := SplitCommand(s)
		if err != nil {
			return
		}
		// Quoting the words and splitting again gives the same words.
		q := make([]string, len(argv))
		for i, w := range argv {
			q[i] = quote(w)
		}
		again, err := SplitCommand(strings.Join(q, " "))
		if err != nil || !slices.Equal(again, argv) {
			t.Fatalf("%q: split %q, re-split %q (%v)", s, argv, again, err)
		}
	})
}

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"php artisan queue:work --tries=3", "queue*3=php artisan queue:work", "a=b", "*=x", "x*0=y", "=", "n*99999999999999999999=p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseFlag(s)
		if err != nil {
			return
		}
		if len(c.Command) == 0 || c.Count < 0 || (c.Name != "" && !validName(c.Name)) {
			t.Fatalf("%q: accepted %+v", s, c)
		}
	})
}

func TestParseFlag(t *testing.T) {
	cases := []struct {
		in    string
		name  string
		count int
		argv  []string
	}{
		{"php artisan queue:work --tries=3", "", 0, []string{"php", "artisan", "queue:work", "--tries=3"}},
		{"mail=php artisan queue:work --queue=mail", "mail", 0, []string{"php", "artisan", "queue:work", "--queue=mail"}},
		{"queue*3=php artisan queue:work", "queue", 3, []string{"php", "artisan", "queue:work"}},
		{"--tries=3", "", 0, []string{"--tries=3"}},
	}
	for _, c := range cases {
		got, err := ParseFlag(c.in)
		if err != nil || got.Name != c.name || got.Count != c.count || !slices.Equal(got.Command, c.argv) {
			t.Errorf("ParseFlag(%q) = %+v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"q*0=php x", "q*many=php x", "q=", "", "q='x"} {
		if _, err := ParseFlag(bad); err == nil {
			t.Errorf("ParseFlag(%q): no error", bad)
		}
	}
}

func TestResolveAndValidate(t *testing.T) {
	root := t.TempDir()
	var cfgs []Config
	err := yaml.Unmarshal([]byte(`
- command: php artisan queue:work --tries=3
- command: [php, artisan, queue:work, --queue=mail]
  count: 2
  directory: .
  environment: {QUEUE: mail}
  stop_timeout: 90s
- {name: horizon, command: php artisan horizon}
`), &cfgs)
	if err != nil {
		t.Fatal(err)
	}
	got := Resolve(cfgs, root)
	if err := Validate(got); err != nil {
		t.Fatal(err)
	}
	if got[0].Name != "queue:work" || got[1].Name != "queue:work-2" || got[2].Name != "horizon" {
		t.Fatalf("names %q %q %q", got[0].Name, got[1].Name, got[2].Name)
	}
	if got[0].Count != 1 || got[0].StopTimeout != DefaultStopTimeout || got[0].Directory != root {
		t.Fatalf("defaults not applied: %+v", got[0])
	}
	if got[1].Count != 2 || got[1].StopTimeout != 90*time.Second || got[1].Directory != root || got[1].Environment["QUEUE"] != "mail" {
		t.Fatalf("second worker %+v", got[1])
	}

	bad := Resolve([]Config{
		{Name: "a b", Command: Command{"php"}},
		{Name: "x", Command: Command{"no-such-program-frontdoor"}},
		{Name: "x", Command: Command{"php"}, Count: MaxCount + 1, Directory: "/no/such/dir"},
		{Name: "y", Command: nil},
	}, root)
	err = Validate(bad)
	for _, want := range []string{`workers[0].name: invalid value "a b"`, `workers[1].command: "no-such-program-frontdoor": not found`,
		`workers[2].name: "x" is also workers[1]'s name`, `workers[2].count: invalid value 257`, `workers[2].directory: "/no/such/dir"`, `workers[3].command: empty`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v, want it to contain %q", err, want)
		}
	}
	var c Command
	if err := yaml.Unmarshal([]byte(`{a: b}`), &c); err == nil {
		t.Error("a mapping was accepted as a command")
	}
}

func TestEnvironDropsFrontdoorsOwnVariables(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("APP_ENV", "production")
	env := environ(map[string]string{"APP_ENV": "worker", "QUEUE": "mail"})
	joined := strings.Join(env, "\n")
	if strings.Contains(joined, "NOTIFY_SOCKET") || strings.Contains(joined, "APP_ENV=production") ||
		!strings.Contains(joined, "APP_ENV=worker") || !strings.Contains(joined, "QUEUE=mail") {
		t.Fatalf("environment:\n%s", joined)
	}
}

// pump cuts long lines and keeps reading past them.
func TestPumpTruncatesLongLines(t *testing.T) {
	var buf bytes.Buffer
	in := strings.Repeat("x", 5000) + "\nshort\r\n" + strings.Repeat("y", 100)
	lim := newLineLimiter(100)
	pump(strings.NewReader(in), 1024, "stderr", lim, zerolog.New(&buf), func() { t.Error("dropped a line under the limit") })
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 {
		t.Fatalf("want 3 lines, got %v", got)
	}
	if m := got[0]["message"].(string); len(m) != 1024 || got[0]["truncated"] != true || got[0]["level"] != "warn" {
		t.Fatalf("long line: %d bytes, %v", len(m), got[0])
	}
	if got[1]["message"] != "short" || got[2]["message"] != strings.Repeat("y", 100) {
		t.Fatalf("lines after the long one: %v", got[1:])
	}
}

// pump never logs a line longer than its cap or with a line break in it, and accounts for every
// non-empty line: logged or suppressed.
func FuzzPump(f *testing.F) {
	for _, s := range []string{"a\nb\n", strings.Repeat("x", 100) + "\n\n\r\ny", "\r\r\n", ""} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, perSecond uint8) {
		const maxLine = 16
		var buf bytes.Buffer
		dropped := 0
		pump(strings.NewReader(in), maxLine, "stdout", newLineLimiter(int(perSecond)), zerolog.New(&buf), func() { dropped++ })
		logged, suppressed := 0, 0
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if n, ok := m["suppressed_lines"].(float64); ok {
				suppressed += int(n)
			}
			if m["message"] == "worker output over the log rate limit was not logged" {
				continue
			}
			msg, _ := m["message"].(string)
			// Invalid UTF-8 reaches JSON as U+FFFD, one rune per byte.
			if utf8.RuneCountInString(msg) > maxLine || strings.ContainsAny(msg, "\n") {
				t.Fatalf("logged %q", msg)
			}
			logged++
		}
		if suppressed != dropped {
			t.Fatalf("%d dropped, %d reported as suppressed", dropped, suppressed)
		}
		if logged+dropped > strings.Count(in, "\n")+1 {
			t.Fatalf("%d logged + %d dropped from %d lines", logged, dropped, strings.Count(in, "\n")+1)
		}
	})
}
