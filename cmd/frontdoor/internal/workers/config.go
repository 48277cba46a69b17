// Package workers supervises the Laravel app's own long-running processes — `php artisan
// queue:work`, `horizon`, `schedule:work` — the job Supervisor does on a Forge-style server.
//
// Each configured worker runs Count copies. A copy that exits is started again after a backoff
// that doubles from BackoffMin to BackoffMax and resets after a run of at least ResetAfter, so a
// crash loop costs one start per backoff, never a spin. Stopping (shutdown, reload) sends SIGTERM
// to the copy's process group, which Laravel's workers answer by finishing the current job, and
// SIGKILL after StopTimeout. Copies are started with Pdeathsig, so a frontdoor killed with SIGKILL
// takes them with it.
package workers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultStopTimeout is how long a stopping worker may finish its current job before SIGKILL.
// Supervisor's stopwaitsecs defaults to 10 s, which cuts most real jobs short; Laravel's own
// queue:work --timeout defaults to 60 s. 30 s covers typical jobs without making every shutdown
// slow; an app with longer jobs sets stop_timeout above its --timeout, as Laravel's docs advise
// for stopwaitsecs.
const DefaultStopTimeout = 30 * time.Second

// MaxCount bounds Count: each copy is a PHP process with its own memory.
const MaxCount = 256

// Config is one supervised program, as the YAML `workers:` list and --worker describe it.
type Config struct {
	// Name labels the worker in logs, /readyz and metrics; derived from the command when empty.
	Name string `yaml:"name"`
	// Command is the program and its arguments. It is never run through a shell.
	Command Command `yaml:"command"`
	// Count is the number of copies (default 1).
	Count int `yaml:"count"`
	// Directory is the working directory (default: the app root; relative paths are from it).
	Directory string `yaml:"directory"`
	// Environment is added to frontdoor's own environment for this worker.
	Environment map[string]string `yaml:"environment"`
	// StopTimeout is the time between SIGTERM and SIGKILL (default DefaultStopTimeout).
	StopTimeout time.Duration `yaml:"stop_timeout"`
}

// Command is an argv. In YAML it is a list, or a string split as SplitCommand does.
type Command []string

// UnmarshalYAML accepts `command: php artisan queue:work` and `command: [php, artisan, queue:work]`.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		argv, err := SplitCommand(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: command: invalid value %q: %v", n.Line, n.Value, err)
		}
		*c = argv
		return nil
	case yaml.SequenceNode:
		var argv []string
		if err := n.Decode(&argv); err != nil {
			return fmt.Errorf("line %d: command: %v", n.Line, err)
		}
		*c = argv
		return nil
	}
	return fmt.Errorf("line %d: command: want a string or a list of strings", n.Line)
}

// SplitCommand splits a command line into words the way a shell would for plain words, without
// running one: blanks separate words, single quotes keep everything literally, double quotes keep
// blanks (a backslash escapes " and \ inside them), and a backslash outside quotes escapes the
// next character. Variables, globs, pipes and redirections have no meaning; write `sh -c '…'`
// for those.
func SplitCommand(s string) ([]string, error) {
	var (
		out    []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			word.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, word.String())
	}
	return out, nil
}

// ParseFlag reads one --worker value: a command line, optionally prefixed with `name=` or
// `name*count=`, e.g. `queue*3=php artisan queue:work --tries=3`. The prefix is recognised only
// when what precedes the first "=" is a bare name (a letter or digit, then letters, digits,
// _ . : -) with an optional *N, so `php artisan queue:work --tries=3` alone is a command.
func ParseFlag(v string) (Config, error) {
	var c Config
	cmdline := v
	if eq := strings.IndexByte(v, '='); eq > 0 {
		prefix := v[:eq]
		name, count, hasCount := strings.Cut(prefix, "*")
		if validName(name) {
			c.Name = name
			cmdline = v[eq+1:]
			if hasCount {
				n, err := strconv.Atoi(count)
				if err != nil || n < 1 {
					return c, fmt.Errorf("count %q: want a whole number ≥ 1 after *", count)
				}
				c.Count = n
			}
		}
	}
	argv, err := SplitCommand(cmdline)
	if err != nil {
		return c, err
	}
	if len(argv) == 0 {
		return c, errors.New("empty command")
	}
	c.Command = argv
	return c, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		ok := alnum || (i > 0 && (r == '_' || r == '.' || r == ':' || r == '-'))
		if !ok {
			return false
		}
	}
	return true
}

// Resolve fills the defaults: Count 1, StopTimeout DefaultStopTimeout, Directory root (a relative
// one joined to root), and a Name taken from the command (`php artisan queue:work` is
// "queue:work", anything else the program's base name) made unique with -2, -3….
func Resolve(cfgs []Config, root string) []Config {
	out := make([]Config, len(cfgs))
	used := map[string]bool{}
	for i, c := range cfgs {
		if c.Name != "" {
			used[c.Name] = true
		}
		out[i] = c
	}
	for i := range out {
		c := &out[i]
		if c.Count == 0 {
			c.Count = 1
		}
		if c.StopTimeout == 0 {
			c.StopTimeout = DefaultStopTimeout
		}
		if c.Directory == "" {
			c.Directory = root
		} else if !filepath.IsAbs(c.Directory) && root != "" {
			c.Directory = filepath.Join(root, c.Directory)
		}
		if c.Name == "" && len(c.Command) > 0 {
			base := defaultName(c.Command)
			name := base
			for n := 2; used[name]; n++ {
				name = base + "-" + strconv.Itoa(n)
			}
			c.Name = name
			used[name] = true
		}
	}
	return out
}

func defaultName(argv []string) string {
	name := filepath.Base(argv[0])
	if strings.HasPrefix(name, "php") && len(argv) > 2 && filepath.Base(argv[1]) == "artisan" {
		name = argv[2]
	}
	var b strings.Builder
	for _, r := range name {
		if !validName("a" + string(r)) {
			r = '-'
		}
		b.WriteRune(r)
	}
	if s := b.String(); validName(s) {
		return s
	}
	return "worker"
}

// Validate checks resolved configs. Every message names workers[i] and the key.
func Validate(cfgs []Config) error {
	var errs []error
	names := map[string]int{}
	for i, c := range cfgs {
		at := fmt.Sprintf("workers[%d]", i)
		if len(c.Command) == 0 || c.Command[0] == "" {
			errs = append(errs, fmt.Errorf("%s.command: empty: want a program and its arguments, e.g. php artisan queue:work", at))
		} else if !strings.Contains(c.Command[0], "/") {
			if _, err := exec.LookPath(c.Command[0]); err != nil {
				errs = append(errs, fmt.Errorf("%s.command: %q: not found in $PATH", at, c.Command[0]))
			}
		}
		if !validName(c.Name) {
			errs = append(errs, fmt.Errorf("%s.name: invalid value %q: want 1-64 letters, digits, _ . : - starting with a letter or digit", at, c.Name))
		} else if j, dup := names[c.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is also workers[%d]'s name", at, c.Name, j))
		} else {
			names[c.Name] = i
		}
		if c.Count < 1 || c.Count > MaxCount {
			errs = append(errs, fmt.Errorf("%s.count: invalid value %d: want 1 to %d", at, c.Count, MaxCount))
		}
		if c.StopTimeout < 0 {
			errs = append(errs, fmt.Errorf("%s.stop_timeout: invalid value %s: want a duration > 0, e.g. 30s", at, c.StopTimeout))
		}
		if c.Directory != "" {
			if st, err := os.Stat(c.Directory); err != nil || !st.IsDir() {
				errs = append(errs, fmt.Errorf("%s.directory: %q is not a directory", at, c.Directory))
			}
		}
		for k := range c.Environment {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				errs = append(errs, fmt.Errorf("%s.environment: invalid variable name %q", at, k))
			}
		}
	}
	return errors.Join(errs...)
}

// environ is the environment a copy starts with: frontdoor's own, minus what is addressed to
// frontdoor alone (systemd's notify socket, which would let a worker speak for frontdoor under
// NotifyAccess=all, and the upgrade pipe), plus the worker's additions in a stable order.
func environ(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := extra[k]; over || k == "NOTIFY_SOCKET" || k == "FRONTDOOR_UPGRADE_FD" {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}
