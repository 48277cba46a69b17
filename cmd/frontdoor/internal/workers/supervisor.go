package workers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Options are the supervisor's settings that apply to every worker. Tests shorten them.
type Options struct {
	BackoffMin time.Duration // wait before the first restart after an exit
	BackoffMax time.Duration // the doubling stops here
	ResetAfter time.Duration // a run this long resets the backoff to BackoffMin
	// LogLinesPerSecond bounds each copy's output lines in the log; the rest are counted.
	LogLinesPerSecond int
	// MaxLineBytes cuts longer output lines (marked truncated).
	MaxLineBytes int
}

// DefaultOptions: 1 s doubling to 60 s, reset after a minute up; 100 lines/s of 8 KiB per copy.
func DefaultOptions() Options {
	return Options{
		BackoffMin:        time.Second,
		BackoffMax:        time.Minute,
		ResetAfter:        time.Minute,
		LogLinesPerSecond: 100,
		MaxLineBytes:      8 << 10,
	}
}

// States a copy reports in Status.
const (
	StateStarting = "starting" // being started
	StateRunning  = "running"
	StateBackoff  = "backoff"  // exited on its own; waiting before the next start
	StateStopping = "stopping" // sent SIGTERM; finishing its current job
	StateStopped  = "stopped"
)

// Supervisor runs the configured workers. Its methods are safe from any goroutine.
type Supervisor struct {
	opts Options
	log  zerolog.Logger

	mu       sync.Mutex
	current  []*instance
	retiring []*instance // removed by a reload, still finishing; Stop waits for them too
	stats    map[string]*nameStats
	stopped  bool
}

// nameStats are per worker name and survive reloads, so counters in Prometheus only grow.
type nameStats struct {
	restarts    atomic.Uint64
	lastExit    atomic.Int64
	exited      atomic.Bool
	droppedLogs atomic.Uint64
}

// New returns a supervisor with nothing running; Start runs the workers.
func New(opts Options, log zerolog.Logger) *Supervisor {
	return &Supervisor{opts: opts, log: log, stats: map[string]*nameStats{}}
}

// Start runs every copy of cfgs (resolved and validated). frontdoor calls it once its listeners
// serve, so a worker that dispatches broadcasts finds the Pusher API up.
func (s *Supervisor) Start(cfgs []Config) { s.apply(cfgs) }

// Reload restarts every running copy the way `php artisan queue:restart` does — SIGTERM, the
// current job finishes, then a new copy starts at once — with cfgs, which may add, change or
// remove workers. Each copy is replaced as soon as its own job ends, not when all have.
func (s *Supervisor) Reload(cfgs []Config) {
	s.log.Info().Int("workers", len(cfgs)).Msg("restarting workers after their current job")
	s.apply(cfgs)
}

type instanceKey struct {
	name  string
	index int
}

func (s *Supervisor) apply(cfgs []Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	old := map[instanceKey]*instance{}
	for _, in := range s.current {
		old[instanceKey{in.name, in.index}] = in
	}
	var next []*instance
	for _, c := range cfgs {
		st := s.stats[c.Name]
		if st == nil {
			st = &nameStats{}
			s.stats[c.Name] = st
		}
		for i := range c.Count {
			k := instanceKey{c.Name, i}
			if in := old[k]; in != nil {
				delete(old, k)
				in.setConfig(c)
				in.request(reqRestart)
				next = append(next, in)
				continue
			}
			in := &instance{
				sup: s, name: c.Name, index: i, st: st, cfg: c, state: StateStarting,
				wake: make(chan struct{}, 1), done: make(chan struct{}),
				log: s.log.With().Str("worker", c.Name).Int("index", i).Logger(),
			}
			next = append(next, in)
			go in.run()
		}
	}
	live := s.retiring[:0]
	for _, in := range s.retiring {
		select {
		case <-in.done:
		default:
			live = append(live, in)
		}
	}
	s.retiring = live
	for _, in := range old {
		in.request(reqStop)
		s.retiring = append(s.retiring, in)
	}
	s.current = next
}

// Stop sends every copy SIGTERM and waits until all have exited: each gets its StopTimeout before
// SIGKILL. The wait is bounded by the longest StopTimeout plus stopGrace (a killed process that
// cannot even be reaped, say in uninterruptible I/O, is not waited for), and by ctx; copies still
// running then are left to their Pdeathsig when frontdoor exits.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	s.stopped = true
	all := append(append([]*instance(nil), s.current...), s.retiring...)
	s.mu.Unlock()
	var longest time.Duration
	for _, in := range all {
		in.request(reqStop)
		in.mu.Lock()
		longest = max(longest, in.cfg.StopTimeout)
		in.mu.Unlock()
	}
	bound := time.NewTimer(longest + stopGrace)
	defer bound.Stop()
	for _, in := range all {
		select {
		case <-in.done:
		case <-ctx.Done():
			return
		case <-bound.C:
			s.log.Warn().Str("worker", in.name).Int("index", in.index).Msg("worker not reaped after SIGKILL; not waiting for it")
			return
		}
	}
}

// stopGrace is what Stop waits beyond the longest StopTimeout: SIGKILL, reaping, the last output.
const stopGrace = pumpGrace + 3*time.Second

// Status is one copy as /readyz shows it.
type Status struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts uint64 `json:"restarts"`
	// LastExit is the last exit code (128+N after signal N, -1 when it could not start).
	LastExit *int   `json:"last_exit_code,omitempty"`
	Backoff  string `json:"backoff,omitempty"` // the wait before the next start, in state backoff
}

// Status lists the current copies by name and index.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	cur := append([]*instance(nil), s.current...)
	s.mu.Unlock()
	out := make([]Status, 0, len(cur))
	for _, in := range cur {
		out = append(out, in.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Index < out[j].Index
	})
	return out
}

// Summary is one worker name's totals, for metrics.
type Summary struct {
	Name         string
	Running      int
	Restarts     uint64 // exits not asked for, each followed by a start after backoff
	LastExit     int
	HasExited    bool // LastExit is meaningful
	DroppedLines uint64
}

// Summaries returns a Summary per worker name ever configured, sorted by name.
func (s *Supervisor) Summaries() []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	running := map[string]int{}
	for _, in := range append(append([]*instance(nil), s.current...), s.retiring...) {
		if in.status().State == StateRunning {
			running[in.name]++
		}
	}
	out := make([]Summary, 0, len(s.stats))
	for name, st := range s.stats {
		out = append(out, Summary{
			Name: name, Running: running[name], Restarts: st.restarts.Load(),
			LastExit: int(st.lastExit.Load()), HasExited: st.exited.Load(), DroppedLines: st.droppedLogs.Load(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type request int

const (
	reqNone request = iota
	reqRestart
	reqStop
)

// instance is one copy of a worker: a goroutine that starts the process, waits for it, and
// starts it again until it is told to stop.
type instance struct {
	sup   *Supervisor
	name  string
	index int
	st    *nameStats
	log   zerolog.Logger

	mu       sync.Mutex
	cfg      Config
	state    string
	pid      int
	restarts uint64
	lastExit int
	exited   bool
	backoff  time.Duration
	pending  request
	wake     chan struct{} // holds a token while pending is set
	done     chan struct{} // closed when the goroutine ends
}

// request asks the running goroutine to restart or stop its process; stop outranks restart.
func (in *instance) request(r request) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if r > in.pending {
		in.pending = r
	}
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// take returns and clears the pending request, and its token.
func (in *instance) take() request {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.pending
	in.pending = reqNone
	select {
	case <-in.wake:
	default:
	}
	return r
}

func (in *instance) setConfig(c Config) {
	in.mu.Lock()
	in.cfg = c
	in.mu.Unlock()
}

func (in *instance) set(f func(in *instance)) {
	in.mu.Lock()
	f(in)
	in.mu.Unlock()
}

func (in *instance) status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := Status{Name: in.name, Index: in.index, State: in.state, Restarts: in.restarts}
	if in.state == StateRunning || in.state == StateStopping {
		st.PID = in.pid
	}
	if in.exited {
		code := in.lastExit
		st.LastExit = &code
	}
	if in.state == StateBackoff {
		st.Backoff = in.backoff.String()
	}
	return st
}

func (in *instance) run() {
	defer close(in.done)
	opts := in.sup.opts
	var delay time.Duration
	for {
		if in.take() == reqStop {
			in.set(func(in *instance) { in.state = StateStopped })
			return
		}
		in.mu.Lock()
		cfg := in.cfg
		in.state = StateStarting
		in.mu.Unlock()

		started := time.Now()
		code, planned := in.runOnce(cfg)
		in.set(func(in *instance) { in.lastExit, in.exited, in.pid = code, true, 0 })
		in.st.lastExit.Store(int64(code))
		in.st.exited.Store(true)
		if planned {
			in.log.Info().Int("exit_code", code).Msg("worker stopped")
			delay = 0
			continue // the loop's top takes the request: stop ends here, restart starts a new copy
		}

		// An exit nobody asked for: start again after a backoff, doubling while it keeps failing.
		ran := time.Since(started)
		if ran >= opts.ResetAfter {
			delay = 0
		}
		if delay == 0 {
			delay = opts.BackoffMin
		} else {
			delay = min(delay*2, opts.BackoffMax)
		}
		in.st.restarts.Add(1)
		in.set(func(in *instance) { in.state, in.backoff = StateBackoff, delay; in.restarts++ })
		in.log.Warn().Int("exit_code", code).Dur("ran", ran).Str("backoff", delay.String()).
			Msg("worker exited; starting it again after the backoff")
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-in.wake: // a stop or reload cuts the wait short; the loop's top takes it
			t.Stop()
		}
	}
}

// runOnce starts the process and waits until it exits, or until a request arrives, in which case
// it stops the process (SIGTERM, then SIGKILL after StopTimeout). It returns the exit code and
// whether the exit was asked for.
func (in *instance) runOnce(cfg Config) (code int, planned bool) {
	cmd, pumped, err := in.start(cfg)
	if err != nil {
		in.log.Error().Err(err).Strs("command", cfg.Command).Str("directory", cfg.Directory).Msg("worker did not start")
		return -1, false
	}
	pid := cmd.Process.Pid
	in.set(func(in *instance) { in.state, in.pid = StateRunning, pid })
	in.log.Info().Int("pid", pid).Msg("worker started")

	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		// The last lines it wrote belong in the log before its exit (and frontdoor's) is. A process
		// it left behind may hold the pipe open: then wait no longer.
		t := time.NewTimer(pumpGrace)
		select {
		case <-pumped:
		case <-t.C:
		}
		t.Stop()
		exited <- err
	}()
	select {
	case err = <-exited:
		return exitCode(err), false
	case <-in.wake: // a stop or restart; the caller's loop takes which one afterwards
	}
	in.set(func(in *instance) { in.state = StateStopping })
	// The whole process group: Horizon's supervisors and anything else the worker started.
	_ = stopGroup(pid)
	t := time.NewTimer(cfg.StopTimeout)
	defer t.Stop()
	select {
	case err = <-exited:
	case <-t.C:
		in.log.Warn().Int("pid", pid).Str("stop_timeout", cfg.StopTimeout.String()).
			Msg("worker still running after stop_timeout: SIGKILL")
		_ = killGroup(pid)
		err = <-exited
	}
	return exitCode(err), true
}

// pumpGrace bounds the wait for a copy's output after it exited.
const pumpGrace = 2 * time.Second

// start runs a copy; pumped is closed once its output has been logged to the end.
func (in *instance) start(cfg Config) (cmd *exec.Cmd, pumped <-chan struct{}, err error) {
	cmd = exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Dir = cfg.Directory
	cmd.Env = environ(cfg.Environment)
	cmd.SysProcAttr = procAttr() // its own process group (proc_*.go)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = spawn(cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, nil, err
	}
	lim := newLineLimiter(in.sup.opts.LogLinesPerSecond)
	log := in.log.With().Int("pid", cmd.Process.Pid).Logger()
	dropped := func() { in.st.droppedLogs.Add(1) }
	var wg sync.WaitGroup
	for _, p := range []struct {
		r      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		wg.Go(func() {
			defer p.r.Close()
			pump(p.r, in.sup.opts.MaxLineBytes, p.stream, lim, log, dropped)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return cmd, done, nil
}

// exitCode is the process's exit status, 128+N when signal N ended it (as shells report it), -1
// when it could not be waited for.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

var (
	spawnOnce  sync.Once
	spawnCalls chan spawnCall
)

type spawnCall struct {
	cmd *exec.Cmd
	err chan error
}

// spawn starts cmd from one OS thread that lives as long as frontdoor. Linux delivers Pdeathsig
// when the parent *thread* exits, and the Go runtime may end the thread a goroutine happened to
// run on; this thread never ends, so the signal comes only with the process.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCalls = make(chan spawnCall)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread stays with this goroutine forever
			for c := range spawnCalls {
				c.err <- c.cmd.Start()
			}
		}()
	})
	c := spawnCall{cmd: cmd, err: make(chan error, 1)}
	spawnCalls <- c
	return <-c.err
}
