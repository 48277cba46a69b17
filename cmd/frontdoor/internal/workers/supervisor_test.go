package workers

// The supervisor against real PHP processes: testdata/worker.php stands in for queue:work.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers/workerstest"
)

// logBuf collects the supervisor's JSON log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) entries() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// find returns the log entries whose message contains msg.
func (l *logBuf) find(msg string) []map[string]any {
	var out []map[string]any
	for _, e := range l.entries() {
		if m, _ := e["message"].(string); strings.Contains(m, msg) {
			out = append(out, e)
		}
	}
	return out
}

// newSupervisor logs JSON into a buffer the test reads, and stops every worker at the end.
func newSupervisor(t *testing.T, opts Options) (*Supervisor, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	s := New(opts, zerolog.New(lb).With().Timestamp().Logger())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.Stop(ctx)
		if t.Failed() {
			t.Logf("supervisor log:\n%s", lb)
		}
	})
	return s, lb
}

// phpWorker is a resolved worker running testdata/worker.php on dir.
func phpWorker(t *testing.T, dir string, env map[string]string) Config {
	t.Helper()
	cfgs := Resolve([]Config{{Name: "queue", Command: Command{workerstest.NeedPHP(t), workerstest.Script(), dir}, Environment: env}}, dir)
	cfgs[0].StopTimeout = 15 * time.Second
	if err := Validate(cfgs); err != nil {
		t.Fatal(err)
	}
	return cfgs[0]
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitFor polls cond; the bound is a failure limit, not a performance assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func running(s *Supervisor) []Status {
	var out []Status
	for _, st := range s.Status() {
		if st.State == StateRunning {
			out = append(out, st)
		}
	}
	return out
}

func TestWorkersProcessJobs(t *testing.T) {
	dir := t.TempDir()
	s, lb := newSupervisor(t, DefaultOptions())
	w := phpWorker(t, dir, nil)
	w.Count = 2
	for _, j := range []string{"job-1", "job-2", "job-3", "job-4"} {
		workerstest.AddJob(t, dir, j, 0)
	}
	s.Start([]Config{w})
	waitFor(t, "four jobs in done/", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "done", "job-*"))
		return len(m) == 4
	})
	st := running(s)
	if len(st) != 2 || st[0].PID == st[1].PID || st[0].PID == 0 {
		t.Fatalf("want two running copies with their own pids, got %+v", s.Status())
	}
	// Output lines arrive with the worker's name and index.
	waitFor(t, "a logged job line", func() bool { return len(lb.find("done job-")) > 0 })
	e := lb.find("done job-")[0]
	if e["worker"] != "queue" || e["stream"] != "stdout" || e["index"] == nil || e["pid"] == nil {
		t.Fatalf("output line without worker, index, pid and stream: %v", e)
	}
}

func TestCrashIsRestartedAfterBackoff(t *testing.T) {
	dir := t.TempDir()
	s, lb := newSupervisor(t, DefaultOptions())
	s.Start([]Config{phpWorker(t, dir, nil)})
	waitFor(t, "the worker to run", func() bool { return len(running(s)) == 1 })
	first := running(s)[0].PID

	workerstest.AddJob(t, dir, "job-crash", 0)
	waitFor(t, "the crash to be recorded", func() bool {
		st := s.Status()[0]
		return st.Restarts == 1 && st.LastExit != nil
	})
	if st := s.Status()[0]; *st.LastExit != 3 {
		t.Fatalf("last exit code %d, want 3", *st.LastExit)
	}
	waitFor(t, "a new copy", func() bool { r := running(s); return len(r) == 1 && r[0].PID != first })
	workerstest.AddJob(t, dir, "job-after", 0)
	waitFor(t, "the restarted worker to process a job", func() bool { return exists(filepath.Join(dir, "done", "job-after")) })

	exits := lb.find("starting it again after the backoff")
	if len(exits) != 1 || exits[0]["exit_code"] != 3.0 || exits[0]["backoff"] != "1s" || exits[0]["worker"] != "queue" {
		t.Fatalf("want one exit line with exit_code 3 and backoff 1s, got %v", exits)
	}
	sum := s.Summaries()
	if len(sum) != 1 || sum[0].Restarts != 1 || sum[0].LastExit != 3 || !sum[0].HasExited || sum[0].Running != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

// A worker that dies at once keeps dying: the supervisor must wait longer each time instead of
// spinning. With 1 s doubling, starts happen at about 0, 1, 3 and 7 s.
func TestCrashLoopBacksOff(t *testing.T) {
	dir := t.TempDir()
	workerstest.AddJob(t, dir, "job-crashloop", 0)
	s, lb := newSupervisor(t, DefaultOptions())
	s.Start([]Config{phpWorker(t, dir, nil)})
	waitFor(t, "the third exit", func() bool { return s.Status()[0].Restarts >= 3 })
	time.Sleep(500 * time.Millisecond) // a spinning supervisor would count dozens more here
	st := s.Status()[0]
	if st.Restarts > 4 {
		t.Fatalf("%d restarts: the crash loop is not backed off", st.Restarts)
	}
	if st.State != StateBackoff || st.Backoff != "4s" {
		t.Fatalf("status %+v, want state backoff with a 4s wait", st)
	}
	var got []string
	for _, e := range lb.find("starting it again after the backoff") {
		got = append(got, e["backoff"].(string))
		if e["exit_code"] != 3.0 {
			t.Fatalf("exit line %v, want exit_code 3", e)
		}
	}
	if len(got) < 3 || strings.Join(got[:3], ",") != "1s,2s,4s" {
		t.Fatalf("backoffs %v, want 1s,2s,4s…", got)
	}
}

// Stopping sends SIGTERM; the worker finishes the job it holds (it reaches done/, not left in
// claimed/), takes no new one, and exits.
func TestStopLetsTheCurrentJobFinish(t *testing.T) {
	dir := t.TempDir()
	s, lb := newSupervisor(t, DefaultOptions())
	s.Start([]Config{phpWorker(t, dir, nil)})
	workerstest.AddJob(t, dir, "job-a-slow", 1500)
	workerstest.AddJob(t, dir, "job-b-next", 0)
	waitFor(t, "the slow job to start", func() bool { return len(lb.find("start job-a-slow")) > 0 })
	pid := s.Status()[0].PID

	s.Stop(context.Background())
	if !exists(filepath.Join(dir, "done", "job-a-slow")) {
		t.Fatal("the job in progress did not finish before the worker exited")
	}
	if exists(filepath.Join(dir, "done", "job-b-next")) || !exists(filepath.Join(dir, "job-b-next")) {
		t.Fatal("a stopping worker took a new job")
	}
	if !workerstest.Gone(pid) {
		t.Fatalf("pid %d still running after Stop", pid)
	}
	st := s.Status()[0]
	if st.State != StateStopped || st.LastExit == nil || *st.LastExit != 0 || st.Restarts != 0 {
		t.Fatalf("status after stop %+v, want stopped, exit 0, no restarts", st)
	}
}

func TestStopKillsAWorkerThatIgnoresSIGTERM(t *testing.T) {
	dir := t.TempDir()
	s, lb := newSupervisor(t, DefaultOptions())
	w := phpWorker(t, dir, map[string]string{"WORKER_IGNORE_TERM": "1"})
	w.StopTimeout = 300 * time.Millisecond
	s.Start([]Config{w})
	workerstest.AddJob(t, dir, "job-long", 60000)
	waitFor(t, "the long job to start", func() bool { return len(lb.find("start job-long")) > 0 })
	pid := s.Status()[0].PID

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.Stop(ctx)
	if ctx.Err() != nil {
		t.Fatal("Stop did not return: the worker was not killed")
	}
	if !workerstest.Gone(pid) {
		t.Fatalf("pid %d survived", pid)
	}
	if st := s.Status()[0]; st.LastExit == nil || *st.LastExit != 128+int(syscall.SIGKILL) {
		t.Fatalf("status %+v, want exit code 137 (SIGKILL)", st)
	}
	if len(lb.find("SIGKILL")) != 1 {
		t.Fatal("the SIGKILL was not logged")
	}
	if !exists(filepath.Join(dir, "claimed", "job-long")) {
		t.Fatal("the killed job should be left in claimed/")
	}
}

// Reload is queue:restart: each copy finishes its job, exits, and a new copy starts at once.
func TestReloadRestartsAfterTheCurrentJob(t *testing.T) {
	dir := t.TempDir()
	s, lb := newSupervisor(t, DefaultOptions())
	w := phpWorker(t, dir, nil)
	s.Start([]Config{w})
	workerstest.AddJob(t, dir, "job-slow", 1500)
	waitFor(t, "the slow job to start", func() bool { return len(lb.find("start job-slow")) > 0 })
	old := s.Status()[0].PID

	s.Reload([]Config{w})
	waitFor(t, "a new copy", func() bool { r := running(s); return len(r) == 1 && r[0].PID != old })
	if !exists(filepath.Join(dir, "done", "job-slow")) {
		t.Fatal("the new copy started before the old one finished its job")
	}
	if !workerstest.Gone(old) {
		t.Fatalf("old pid %d still running beside the new one", old)
	}
	st := s.Status()[0]
	if st.Restarts != 0 || st.LastExit == nil || *st.LastExit != 0 {
		t.Fatalf("status %+v: a reload is no crash (restarts 0, exit 0)", st)
	}
	workerstest.AddJob(t, dir, "job-after", 0)
	waitFor(t, "the new copy to work", func() bool { return exists(filepath.Join(dir, "done", "job-after")) })

	// A reload may also change the set: count 2 adds a copy, a removed worker stops.
	w.Count = 2
	s.Reload([]Config{w})
	waitFor(t, "two copies", func() bool { return len(running(s)) == 2 })
	s.Reload(nil)
	if len(s.Status()) != 0 {
		t.Fatalf("removed worker still listed: %+v", s.Status())
	}
	waitFor(t, "the removed copies to stop", func() bool { return s.Summaries()[0].Running == 0 })
}

// A flood of output is rate-limited; every line is either logged or counted as suppressed.
func TestOutputFloodIsRateLimited(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions()
	opts.LogLinesPerSecond = 50
	s, lb := newSupervisor(t, opts)
	s.Start([]Config{phpWorker(t, dir, map[string]string{"WORKER_FLOOD": "5000"})})
	workerstest.AddJob(t, dir, "job-a", 0)
	waitFor(t, "the job", func() bool { return exists(filepath.Join(dir, "done", "job-a")) })
	s.Stop(context.Background())

	logged, suppressed := 0, 0
	for _, e := range lb.entries() {
		if e["stream"] == "stdout" && e["worker"] == "queue" {
			if m, _ := e["message"].(string); !strings.HasPrefix(m, "worker output over") {
				logged++
			}
		}
		if n, ok := e["suppressed_lines"].(float64); ok {
			suppressed += int(n)
		}
	}
	// flood, "worker ready", start, done, the SIGTERM line, "stopped after SIGTERM".
	const printed = 5000 + 5
	if logged >= printed || suppressed == 0 {
		t.Fatalf("logged %d of %d lines, %d suppressed: no rate limit", logged, printed, suppressed)
	}
	if logged+suppressed != printed {
		t.Fatalf("logged %d + suppressed %d != %d printed", logged, suppressed, printed)
	}
	if d := s.Summaries()[0].DroppedLines; d != uint64(suppressed) {
		t.Fatalf("DroppedLines %d, want %d", d, suppressed)
	}
}
