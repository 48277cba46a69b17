package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
)

const usage = `frontdoor bench: load-test any Pusher-protocol server (frontdoor, Reverb, Soketi) and a PHP front door

Usage:
  frontdoor bench <scenario> [flags]
  frontdoor bench compare [--html out.html] a.json b.json ...

Scenarios (each stops by itself):
  suite        the standard set below at standard sizes, one report (--small for a quick run)
  connections  ramp to --connections subscribed sockets, hold them --hold; set-up rate, server
               memory per idle socket, ping health
  fanout       --subscribers sockets on --channels channels, --rate msg/s of --size bytes over the
               signed HTTP API for --duration; deliveries/s, latency, lost, duplicated, out of order
  publish      --clients concurrent API clients for --duration; requests/s, latency, errors
  presence     --clients loops join/leave presence channels; member events/s and count correctness
  churn        --clients loops connect+subscribe+close for --duration; cycles/s
  proxy        --clients GET each --path on --http-url for --duration; requests/s and latency

Examples:
  frontdoor bench suite --url ws://127.0.0.1:8080 --env-file .env
  frontdoor bench fanout --url ws://127.0.0.1:6001 --app-id 1 --key k --secret s --subscribers 2000
  frontdoor bench compare --html compare.html frontdoor.json soketi.json

Flags:
`

type pidList []int

func (p *pidList) String() string { return fmt.Sprint([]int(*p)) }
func (p *pidList) Set(v string) error {
	if v == "auto" || v == "none" {
		*p = append(*p, map[string]int{"auto": 0, "none": -1}[v])
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a process id, auto or none")
	}
	*p = append(*p, n)
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Main is `frontdoor bench`: it parses args, runs the scenario and prints the report. It
// returns the process exit code (0 ok, 1 run failed, 2 usage).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		f := newFlags(stdout)
		f.fs.PrintDefaults()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, args := args[0], args[1:]
	if cmd == "compare" {
		return compareMain(args, stdout, stderr)
	}
	f := newFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench %s: unexpected argument %q\n", cmd, f.fs.Arg(0))
		return 2
	}
	if cmd != "suite" && !isScenario(cmd) {
		fmt.Fprintf(stderr, "bench: unknown scenario %q\n\n%s", cmd, usage)
		return 2
	}
	o, err := f.options(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if out, ok := stdout.(*os.File); ok && isTerminal(out) {
		o.Progress = stdout
	}
	o.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "bench: cpuprofile: %v\n", err)
			return 2
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(stderr, "bench: cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := Run(ctx, o, cmd)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	jsonPath, htmlPath := f.json, f.html
	if cmd == "suite" && jsonPath == "" && htmlPath == "" {
		stamp := "frontdoor-bench-" + safeName(rep.Label) + "-" + rep.Started.UTC().Format("20060102-150405")
		jsonPath, htmlPath = stamp+".json", stamp+".html"
	}
	if jsonPath == "-" {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	} else {
		rep.WriteText(stdout)
	}
	if err := writeFiles(rep, jsonPath, htmlPath, stderr); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func writeFiles(rep *Report, jsonPath, htmlPath string, log io.Writer) error {
	if jsonPath != "" && jsonPath != "-" {
		if err := writeFile(jsonPath, rep.WriteJSON); err != nil {
			return err
		}
		fmt.Fprintf(log, "report: %s\n", jsonPath)
	}
	if htmlPath != "" {
		if err := writeFile(htmlPath, func(w io.Writer) error { return WriteHTML(w, []*Report{rep}) }); err != nil {
			return err
		}
		fmt.Fprintf(log, "report: %s\n", htmlPath)
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, s)
}

func isScenario(name string) bool {
	for _, s := range Scenarios {
		if s == name {
			return true
		}
	}
	return false
}

type cliFlags struct {
	fs         *flag.FlagSet
	t          Target
	envFile    string
	pids       pidList
	paths      stringList
	s          Sizes
	small      bool
	json, html string
	interval   time.Duration
	cpuProfile string
	pin        string
}

func newFlags(out io.Writer) *cliFlags {
	f := &cliFlags{fs: flag.NewFlagSet("frontdoor bench", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(out)
	d := DefaultSizes
	fs.StringVar(&f.t.URL, "url", "", "server to test: ws://host:port or wss://host:port[/prefix] (default: from --env-file)")
	fs.StringVar(&f.t.AppID, "app-id", "", "Pusher app id (REVERB_APP_ID)")
	fs.StringVar(&f.t.Key, "key", "", "Pusher app key (REVERB_APP_KEY)")
	fs.StringVar(&f.t.Secret, "secret", "", "Pusher app secret (REVERB_APP_SECRET)")
	fs.StringVar(&f.envFile, "env-file", "", "Laravel `.env` to read REVERB_APP_ID/KEY/SECRET and REVERB_HOST/PORT/SCHEME from")
	fs.Var(&f.pids, "server-pid", "server process to sample for RSS and CPU (repeatable; auto = the process listening on the url's port, the default on loopback; none)")
	fs.Var((*stringList)(&f.t.Nodes), "node", "another node of the same cluster, ws://host:port (repeatable): WebSocket clients are spread over --url and the nodes, API calls go to --url")
	fs.StringVar(&f.t.Label, "label", "", "name of the server in reports, e.g. frontdoor or soketi (default: host:port)")
	fs.BoolVar(&f.t.Insecure, "insecure", false, "do not verify TLS certificates")
	fs.StringVar(&f.t.HTTPURL, "http-url", "", "base URL for the proxy scenario (default: the url with http/https)")
	fs.Var(&f.paths, "path", "proxy scenario: URL path to request (repeatable), e.g. /index.php and /robots.txt")
	fs.BoolVar(&f.small, "small", false, "small sizes (a quick check; the whole suite takes about half a minute)")
	fs.StringVar(&f.json, "json", "", "write the report as JSON to `file` (- for stdout instead of the table)")
	fs.StringVar(&f.html, "html", "", "write the report as self-contained HTML with charts to `file`")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the bench client's own CPU profile to `file` (where the client's CPU time goes)")
	fs.StringVar(&f.pin, "pin", PinOff, "on: client on CPU 0, the server processes (--server-pid, with their children) on CPU 1; both: every scenario unpinned, then pinned; off")
	fs.DurationVar(&f.interval, "interval", 0, "resource sampling interval (default 1s, 250ms with --small)")
	fs.IntVar(&f.s.Connections, "connections", 0, fmt.Sprintf("connections: sockets to hold (default %d)", d.Connections))
	fs.DurationVar(&f.s.Hold, "hold", 0, fmt.Sprintf("connections: how long to hold them (default %s)", d.Hold))
	fs.IntVar(&f.s.Subscribers, "subscribers", 0, fmt.Sprintf("fanout: subscribed sockets (default %d)", d.Subscribers))
	fs.IntVar(&f.s.Channels, "channels", 0, fmt.Sprintf("fanout: channels the subscribers spread over (default %d)", d.Channels))
	fs.Float64Var(&f.s.Rate, "rate", 0, fmt.Sprintf("fanout: messages per second offered (default %g)", d.Rate))
	fs.Float64Var(&f.s.LatencyRate, "latency-rate", 0, fmt.Sprintf("suite: rate of the latency fan-out run (default %g)", d.LatencyRate))
	fs.IntVar(&f.s.Size, "size", 0, fmt.Sprintf("fanout, publish: event data bytes (default %d)", d.Size))
	fs.IntVar(&f.s.Publishers, "publishers", 0, fmt.Sprintf("fanout: publishing streams per channel, each sending one request at a time (default %d)", d.Publishers))
	fs.IntVar(&f.s.Clients, "clients", 0, fmt.Sprintf("publish, presence, churn, proxy: concurrent clients (default %d)", d.Clients))
	fs.IntVar(&f.s.Concurrency, "concurrency", 0, fmt.Sprintf("connections, fanout: concurrent dials while ramping (default %d)", d.Concurrency))
	fs.DurationVar(&f.s.Duration, "duration", 0, fmt.Sprintf("measuring time per scenario (default %s)", d.Duration))
	return f
}

func (f *cliFlags) options(log io.Writer) (Options, error) {
	o := Options{Small: f.small, Interval: f.interval, Pin: f.pin}
	if err := validPin(f.pin); err != nil {
		return o, err
	}
	t := f.t
	if f.envFile != "" {
		env, err := dotenv.Load(f.envFile)
		if err != nil {
			return o, fmt.Errorf("env-file: %w", err)
		}
		t.LoadEnv(env.Values())
	}
	if err := t.Validate(); err != nil {
		return o, err
	}
	e, _ := t.endpoint()
	auto, none := len(f.pids) == 0 && e.loopback, false
	for _, p := range f.pids {
		switch {
		case p == 0:
			auto = true
		case p < 0:
			none = true
		default:
			t.ServerPIDs = append(t.ServerPIDs, p)
		}
	}
	if auto && !none && len(t.ServerPIDs) == 0 {
		pid, err := listenerPID(e.port())
		if err != nil {
			if len(f.pids) > 0 {
				return o, errors.New("server-pid: auto: " + err.Error())
			}
			fmt.Fprintf(log, "bench: server process not found (%v); pass --server-pid for server CPU and memory\n", err)
		} else {
			t.ServerPIDs = []int{pid}
			fmt.Fprintf(log, "bench: sampling server pid %d (%s)\n", pid, procCommand(pid))
		}
		for _, n := range t.Nodes {
			nt := t
			nt.URL, nt.Nodes = n, nil
			ne, err := nt.endpoint()
			if err != nil || !ne.loopback {
				continue
			}
			if pid, err := listenerPID(ne.port()); err == nil && !slices.Contains(t.ServerPIDs, pid) {
				t.ServerPIDs = append(t.ServerPIDs, pid)
				fmt.Fprintf(log, "bench: sampling node pid %d (%s)\n", pid, procCommand(pid))
			}
		}
	}
	o.Target = t
	o.Sizes = f.s
	o.Sizes.Paths = f.paths
	return o, nil
}
