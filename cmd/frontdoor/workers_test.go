package main

// Supervised workers: their settings, and the real binary running the PHP stand-in for queue:work.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers"
	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers/workerstest"
)

func TestWorkerSettings(t *testing.T) {
	yml := writeFile(t, "frontdoor.yaml", `workers:
  - name: mail
    command: php artisan queue:work --queue=mail
    count: 2
    environment: {QUEUE_CONNECTION: redis}
  - command: [php, artisan, horizon]
    stop_timeout: 1m
`)
	dotenv := writeFile(t, ".env", "APP_NAME=x\n")
	s, err := load(t, []string{"--config", yml, "--env-file", dotenv}, env())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(dotenv)
	if len(s.Workers) != 2 {
		t.Fatalf("workers %+v", s.Workers)
	}
	m, h := s.Workers[0], s.Workers[1]
	if m.Name != "mail" || m.Count != 2 || m.Directory != root || m.StopTimeout != workers.DefaultStopTimeout ||
		m.Environment["QUEUE_CONNECTION"] != "redis" || !slices.Equal(m.Command, []string{"php", "artisan", "queue:work", "--queue=mail"}) {
		t.Fatalf("first worker %+v", m)
	}
	if h.Name != "horizon" || h.Count != 1 || h.StopTimeout != time.Minute || h.Directory != root {
		t.Fatalf("second worker %+v", h)
	}

	// FRONTDOOR_WORKER separates commands with ";", because a command has commas of its own.
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env("FRONTDOOR_WORKER",
		"php artisan queue:work --queue=high,default; sched=php artisan schedule:work"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Workers) != 2 || s.Workers[0].Name != "queue:work" || s.Workers[0].Command[3] != "--queue=high,default" ||
		s.Workers[1].Name != "sched" {
		t.Fatalf("FRONTDOOR_WORKER gave %+v", s.Workers)
	}
	wd, _ := os.Getwd()
	if s.Workers[0].Directory != wd {
		t.Fatalf("with no .env the app root is the current directory: %q, want %q", s.Workers[0].Directory, wd)
	}

	// Flags replace the YAML list; --root's parent is the app root when there is no .env.
	public := filepath.Join(t.TempDir(), "public")
	if err := os.Mkdir(public, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = load(t, []string{"--config", yml, "--env-file", "", "--root", public,
		"--worker", "q*3=php artisan queue:work --tries=3", "--worker", "php artisan horizon"}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Workers) != 2 || s.Workers[0].Name != "q" || s.Workers[0].Count != 3 || s.Workers[1].Name != "horizon" ||
		s.Workers[0].Directory != filepath.Dir(public) {
		t.Fatalf("--worker gave %+v", s.Workers)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--worker", "q*0=php x"}, `--worker: invalid value "q*0=php x"`},
		{[]string{"--worker", "php 'x"}, "unterminated single quote"},
		{[]string{"--worker", "no-such-program-frontdoor"}, `workers[0].command: "no-such-program-frontdoor": not found`},
	} {
		if _, err := load(t, append([]string{"--env-file", ""}, c.args...), env()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
	bad := writeFile(t, "bad.yaml", "workers:\n  - command: php\n    cont: 2\n")
	if _, err := load(t, []string{"--config", bad, "--env-file", ""}, env()); err == nil || !strings.Contains(err.Error(), "cont") {
		t.Errorf("unknown worker key: %v", err)
	}
}

type readyWorkers struct {
	Ready   bool             `json:"ready"`
	Workers []workers.Status `json:"workers"`
}

func getReady(t *testing.T, admin string) readyWorkers {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readyWorkers
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func runningPIDs(t *testing.T, admin string) []int {
	var pids []int
	for _, w := range getReady(t, admin).Workers {
		if w.State == workers.StateRunning {
			pids = append(pids, w.PID)
		}
	}
	return pids
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveWithWorker starts frontdoor with two copies of the PHP worker on a jobs directory. After
// each job the worker makes an HTTP request to frontdoor, as a job that broadcasts would.
func serveWithWorker(t *testing.T, args ...string) (p *proc, admin, jobs string) {
	php := workerstest.NeedPHP(t)
	dir := t.TempDir()
	jobs = filepath.Join(dir, "jobs")
	if err := os.Mkdir(jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	admin, listen := freeAddr(t), freeAddr(t)
	t.Setenv("WORKER_PING_URL", "http://"+listen+"/ping") // inherited through frontdoor
	p = startFrontdoor(t, dir, append([]string{"serve", "--listen", listen, "--admin", admin, "--env-file", "",
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1",
		"--worker", "queue*2=" + php + " '" + workerstest.Script() + "' '" + jobs + "'"}, args...)...)
	p.waitLog(t, `"worker started"`, `"worker":"queue"`, `"index":1`)
	waitUntil(t, "two running copies in /readyz", func() bool { return len(runningPIDs(t, admin)) == 2 })
	return p, admin, jobs
}

// frontdoor serve --worker: the worker runs once listeners are up, its output is in the log with
// its name, /readyz and /metrics show it, SIGHUP restarts it and SIGTERM lets its job finish.
func TestServeSupervisesWorkers(t *testing.T) {
	p, admin, jobs := serveWithWorker(t)
	workerstest.AddJob(t, jobs, "job-a", 0)
	p.waitLog(t, `"worker":"queue"`, `"stream":"stdout"`, `"message":"done job-a"`)

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`frontdoor_workers_running{worker="queue"} 2`, `frontdoor_worker_restarts_total{worker="queue"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(metrics), "worker"))
		}
	}

	// SIGHUP is queue:restart: new copies, the old ones gone.
	old := runningPIDs(t, admin)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "new copies after SIGHUP", func() bool {
		now := runningPIDs(t, admin)
		return len(now) == 2 && !slices.Contains(now, old[0]) && !slices.Contains(now, old[1])
	})
	for _, pid := range old {
		if !workerstest.Gone(pid) {
			t.Errorf("pid %d survived the reload", pid)
		}
	}

	// SIGTERM: the job in progress finishes before frontdoor exits.
	workerstest.AddJob(t, jobs, "job-slow", 1500)
	p.waitLog(t, `"message":"start job-slow"`)
	pids := runningPIDs(t, admin)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jobs, "done", "job-slow")); err != nil {
		t.Fatal("frontdoor exited before the worker finished its job")
	}
	// The job's request after it finished still found frontdoor listening.
	if strings.Contains(p.log(), "ping failed") || !strings.Contains(p.log(), "ping reached") {
		t.Fatalf("a job finishing during shutdown could not reach frontdoor:\n%s", grepLines(p.log(), "ping"))
	}
	for _, pid := range pids {
		if !workerstest.Gone(pid) {
			t.Errorf("worker pid %d outlived frontdoor", pid)
		}
	}
}
