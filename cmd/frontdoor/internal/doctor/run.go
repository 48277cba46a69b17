package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
	"github.com/frontdoorhq/frontdoor/internal/rlimit"
)

// Options are the flags of `frontdoor doctor`.
type Options struct {
	EnvFile  string        // the Laravel .env to check; its directory is taken as the project root
	URL      string        // server for the live checks; "" derives it from REVERB_SCHEME/HOST/PORT/SERVER_PATH
	JSON     bool          // print the report as JSON instead of text
	Timeout  time.Duration // per live check; 0 means 5s
	Insecure bool          // live checks accept an untrusted TLS certificate (still report its expiry and names)
	CAFile   string        // PEM file of extra trusted roots for the live TLS checks (private CAs); "" = system roots
	Offline  bool          // static checks only: no connection to any server (CI, or before the server exists)

	// lookupEnv replaces os.LookupEnv (tests); now replaces time.Now (tests).
	lookupEnv func(string) (string, bool)
	now       func() time.Time
}

// DefaultTimeout bounds each live check when Options.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// UsageError is a problem with the options themselves (exit code 2), not with the checked setup.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Run checks the setup, prints the report to stdout and returns the exit code: 0 when nothing
// is an error, 1 when something is, 2 when the options are unusable.
func Run(ctx context.Context, opts Options, stdout io.Writer) int {
	rep, err := Check(ctx, opts)
	if err != nil {
		fmt.Fprintf(stdout, "frontdoor doctor: %v\n", err)
		return 2
	}
	if opts.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		return 1
	}
	if rep.Count(Error) > 0 {
		return 1
	}
	return 0
}

// Check runs every static check on the .env and its project, then the live checks against the
// server, and returns the findings sorted by severity. The error is a *UsageError.
func Check(ctx context.Context, opts Options) (*Report, error) {
	if opts.Timeout < 0 {
		return nil, &UsageError{fmt.Sprintf("--timeout %s: must be positive", opts.Timeout)}
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.lookupEnv == nil {
		opts.lookupEnv = os.LookupEnv
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	var target *url.URL
	if opts.URL != "" {
		u, err := parseTarget(opts.URL)
		if err != nil {
			return nil, err
		}
		target = u
	}

	rep := &Report{EnvFile: opts.EnvFile}
	p := &project{envPath: opts.EnvFile, dir: filepath.Dir(opts.EnvFile), lookup: opts.lookupEnv}
	if opts.EnvFile != "" {
		p.loadAndCheck()
	}
	rep.Findings = append(rep.Findings, p.findings...)
	rep.Findings = append(rep.Findings, nofileFinding())

	lc := &liveCheck{opts: opts, p: p}
	switch {
	case opts.Offline:
		rep.sortFindings()
		return rep, nil
	case target == nil && p.file != nil:
		target = lc.derivedTarget()
	}
	if target != nil {
		rep.URL = target.String()
		rep.Findings = append(rep.Findings, lc.run(ctx, target, opts.URL != "")...)
	} else {
		rep.Findings = append(rep.Findings, Finding{Severity: Info, Code: "live-skipped",
			Message: "no server to check: pass --url, or set REVERB_HOST in the .env"})
	}
	rep.sortFindings()
	return rep, nil
}

// loadAndCheck parses the .env and runs the static checks; a missing file is an error finding.
func (p *project) loadAndCheck() {
	fh, err := os.Open(p.envPath)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = fmt.Sprintf("%s does not exist; run doctor from the Laravel project root or pass --env-file path/to/.env", p.envPath)
		}
		p.findings = append(p.findings, Finding{Severity: Error, Code: "env-file-missing", File: p.envPath, Message: msg})
		return
	}
	defer fh.Close()
	f, perr := dotenv.Parse(p.envPath, fh, p.lookup)
	if f == nil {
		p.findings = append(p.findings, Finding{Severity: Error, Code: "env-file-unreadable", File: p.envPath, Message: perr.Error()})
		return
	}
	p.file = f
	p.staticChecks(perr)
}

// parseTarget accepts https://host[:port][/prefix] (also http, ws, wss); a bare host means https.
func parseTarget(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, &UsageError{fmt.Sprintf("--url %q: want a URL like https://app.example.com", s)}
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, &UsageError{fmt.Sprintf("--url %q: scheme must be http, https, ws or wss", s)}
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return nil, &UsageError{fmt.Sprintf("--url %q: bad port", s)}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// hostPort is the dial address of a target, with the scheme's default port.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// nofileFinding prints the descriptor limit: every WebSocket holds one (laravel-config.md §5 #14).
func nofileFinding() Finding {
	cur, hard, err := rlimit.NoFile()
	if errors.Is(err, errors.ErrUnsupported) {
		return Finding{Severity: Info, Code: "nofile-limit", Message: err.Error()}
	}
	if err != nil {
		return Finding{Severity: Info, Code: "nofile-limit", Message: "cannot read the file descriptor limit: " + err.Error()}
	}
	return Finding{Severity: Info, Code: "nofile-limit", Message: fmt.Sprintf(
		"this shell's file descriptor limit: soft %d, hard %d. Each WebSocket holds one; frontdoor raises its soft limit to the hard one at start-up, so the service's hard limit caps connections",
		cur, hard), Fix: "for the service: LimitNOFILE=1048576 in its systemd unit (deploy/frontdoor.service has it)"}
}
