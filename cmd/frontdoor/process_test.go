package main

// Process-level tests: the real binary, started as a user would start it, driven over loopback.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// frontdoorBin builds the command once per test run.
func frontdoorBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "frontdoor-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "frontdoor")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr is a loopback address for a frontdoor child, reserved until the test ends.
func freeAddr(t *testing.T) string { return testenv.ReserveAddr(t) }

// proc is a running frontdoor whose JSON log lines the test can wait for.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	seen  chan struct{} // pinged on every new log line
	done  chan struct{}
	err   error
}

func startFrontdoor(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startCommand(t, dir, exec.Command(frontdoorBin(t), args...))
}

// startCommand runs cmd, a frontdoor or a wrapper that execs one, as startFrontdoor does.
func startCommand(t *testing.T, dir string, cmd *exec.Cmd) *proc {
	t.Helper()
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FRONTDOOR_LOG_FORMAT=json")
	cmd.SysProcAttr = testenv.DieWithParent()
	// An *os.File rather than StderrPipe: after a binary upgrade the new process inherits this
	// stderr, and the old process's exit must not wait for the new one's output to end.
	stderr, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w // Stdout stays nil (/dev/null): a copying goroutine would also wait for the new process
	p := &proc{cmd: cmd, seen: make(chan struct{}, 1), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	go func() {
		defer stderr.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.seen <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("frontdoor log:\n%s", p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLog waits until a log line contains every one of the fragments.
func (p *proc) waitLog(t *testing.T, fragments ...string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			ok := true
			for _, f := range fragments {
				ok = ok && strings.Contains(l, f)
			}
			if ok {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.seen:
		case <-p.done:
			t.Fatalf("frontdoor exited (%v) before logging %q", p.err, fragments)
		case <-deadline:
			t.Fatalf("no log line with %q", fragments)
		}
	}
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatal("frontdoor did not exit")
		return nil
	}
}

// pusherEvent is one frame as the server sends it (data is a JSON string, spec §2).
type pusherEvent struct {
	Event   string `json:"event"`
	Channel string `json:"channel,omitempty"`
	Data    string `json:"data,omitempty"`
}

func dialPusher(t *testing.T, addr, key string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/"+key+"?protocol=7&client=go&version=1", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ev := readEvent(t, c)
	if ev.Event != "pusher:connection_established" {
		t.Fatalf("first event = %+v", ev)
	}
	return c
}

func readEvent(t *testing.T, c *websocket.Conn) pusherEvent {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var ev pusherEvent
	if err := json.Unmarshal(msg, &ev); err != nil {
		t.Fatalf("not a Pusher frame: %q", msg)
	}
	return ev
}

func ping(t *testing.T, c *websocket.Conn) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:ping","data":{}}`)); err != nil {
		t.Fatalf("write ping: %v", err)
	}
	if ev := readEvent(t, c); ev.Event != "pusher:pong" {
		t.Fatalf("want pusher:pong, got %+v", ev)
	}
}

// The README's run command: no configuration at all gives a working server and a .env snippet.
func TestServeWithNoConfiguration(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	p := startFrontdoor(t, dir, "serve", "--listen", addr, "--admin", "off")
	p.waitLog(t, `"listening"`, addr)
	out := p.log()
	i := strings.Index(out, "REVERB_APP_KEY=")
	if i < 0 {
		t.Fatalf("no .env snippet printed:\n%s", out)
	}
	key := strings.TrimSpace(strings.SplitN(out[i+len("REVERB_APP_KEY="):], "\n", 2)[0])
	c := dialPusher(t, addr, key)
	ping(t, c)
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

// The admin listener: liveness, readiness as JSON, and frontdoor_ metrics after real traffic.
func TestAdminEndpoints(t *testing.T) {
	addr, admin := freeAddr(t), freeAddr(t)
	p := startFrontdoor(t, t.TempDir(), "serve", "--listen", addr, "--admin", admin,
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p.waitLog(t, `"admin listening"`)
	c := dialPusher(t, addr, "key1")
	ping(t, c)

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := get("/readyz")
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Checks["listeners"] != "ok" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	// Nothing answers on the default PHP upstream here, so the node is not ready to serve pages.
	if ready.Ready || code != 503 || ready.Checks["upstream"] == "ok" {
		t.Fatalf("/readyz with no PHP upstream = %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"frontdoor_connections", "go_goroutines", "process_resident_memory_bytes", "frontdoor_previous_release_assets_served_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, `frontdoor_connections{app="1"} 1`) {
		t.Errorf("/metrics does not count the open socket:\n%s", grepLines(metrics, "frontdoor_connections"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
