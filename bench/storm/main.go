//go:build linux

// Command storm measures a reconnect storm against real php-fpm: N WebSocket clients with two
// private channels each, authorized by a PHP script through frontdoor's /broadcasting/auth,
// then a zero-downtime restart (SIGUSR2) that tells every client to reconnect (4200). It reports
// how long until every client is subscribed again and the latency of page requests running
// beside the storm, with frontdoor's pacing and authorization lane on ("paced") and off
// ("unpaced", --auth-lane-share 0). docs/benchmarks.md has the figures and how to re-run:
//
//	go run ./bench/storm -clients 10000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

const (
	appID, appKey, appSecret = "storm", "storm-key", "storm-secret"
)

type options struct {
	clients, workers, pageClients int
	authMS, pageMS                int
	bin, phpFPM                   string
	shutdownTimeout, limit        time.Duration
}

func main() {
	var o options
	mode := flag.String("mode", "both", "paced, unpaced or both")
	flag.IntVar(&o.clients, "clients", 2000, "WebSocket clients, two private channels each")
	flag.IntVar(&o.workers, "workers", 4, "php-fpm workers (pm.max_children = max_conns)")
	flag.IntVar(&o.authMS, "auth-ms", 5, "milliseconds PHP sleeps in /broadcasting/auth")
	flag.IntVar(&o.pageMS, "page-ms", 5, "milliseconds PHP sleeps for a page")
	flag.IntVar(&o.pageClients, "page-clients", 4, "concurrent page request loops during the storm")
	flag.StringVar(&o.bin, "bin", "", "frontdoor binary (default: go build ./cmd/frontdoor)")
	flag.StringVar(&o.phpFPM, "php-fpm", "php-fpm8.2", "php-fpm binary")
	flag.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 120*time.Second, "frontdoor --shutdown-timeout (caps the pacing window)")
	flag.DurationVar(&o.limit, "limit", 10*time.Minute, "give up on a run after this long")
	flag.Parse()
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "storm-bin")
		check(err)
		defer os.RemoveAll(dir)
		o.bin = filepath.Join(dir, "frontdoor")
		out, err := exec.Command("go", "build", "-o", o.bin, "./cmd/frontdoor").CombinedOutput()
		if err != nil {
			fail("go build ./cmd/frontdoor (run from the repository root): %v\n%s", err, out)
		}
	}
	modes := []string{*mode}
	if *mode == "both" {
		modes = []string{"unpaced", "paced"}
	}
	fmt.Printf("storm: %d clients × 2 private channels, php-fpm %d workers, auth %d ms, page %d ms, %d page loops, %s\n",
		o.clients, o.workers, o.authMS, o.pageMS, o.pageClients, time.Now().UTC().Format(time.RFC3339))
	for _, m := range modes {
		r, err := run(o, m == "paced")
		if err != nil {
			fail("%s: %v", m, err)
		}
		fmt.Printf("%-8s resubscribed all in %6.1f s | auth 503s %5d | pages during storm: %6d, p50 %7.1f ms, p99 %8.1f ms, max %8.1f ms, errors %d | pages before: p99 %.1f ms\n",
			m, r.resubscribe.Seconds(), r.refused, r.pages, r.p50, r.p99, r.max, r.pageErrors, r.baseP99)
		fmt.Printf("         frontdoor: %s\n", r.window)
	}
}

type result struct {
	window                 string // what the old process logged about its pacing
	resubscribe            time.Duration
	refused                int64
	pages, pageErrors      int
	p50, p99, max, baseP99 float64
}

func run(o options, paced bool) (result, error) {
	dir, err := os.MkdirTemp("", "storm")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	pub := filepath.Join(dir, "public")
	check(os.MkdirAll(pub, 0o755))
	// Laravel's channel authorization, reduced to what it signs (protocol: HMAC-SHA256 over
	// "socket_id:channel_name" with the app secret), after authMS of "work".
	php := fmt.Sprintf(`<?php
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/broadcasting/auth') {
    usleep(%d);
    $sig = hash_hmac('sha256', $_POST['socket_id'] . ':' . $_POST['channel_name'], '%s');
    header('Content-Type: application/json');
    echo json_encode(['auth' => '%s:' . $sig]);
    exit;
}
usleep(%d);
echo "page";
`, o.authMS*1000, appSecret, appKey, o.pageMS*1000)
	check(os.WriteFile(filepath.Join(pub, "index.php"), []byte(php), 0o644))

	fpm, sock, err := startFPM(o, dir)
	if err != nil {
		return result{}, err
	}
	defer stop(fpm)

	port, admin := freePort(), freePort()
	args := []string{"serve", "--listen", "127.0.0.1:" + port, "--admin", "127.0.0.1:" + admin, "--env-file", "",
		"--root", pub, "--upstream", "fastcgi://" + sock + "?max_conns=" + strconv.Itoa(o.workers),
		"--app-id", appID, "--app-key", appKey, "--app-secret", appSecret,
		"--pid-file", filepath.Join(dir, "frontdoor.pid"), "--shutdown-timeout", o.shutdownTimeout.String(),
		"--log-level", "info", "--max-connections", "0"}
	if !paced {
		args = append(args, "--auth-lane-share", "0") // no lane, and so no rate to pace by
	}
	fdLog, err := os.Create(filepath.Join(dir, "frontdoor.log"))
	check(err)
	defer fdLog.Close()
	fd := exec.Command(o.bin, args...)
	fd.Stdout, fd.Stderr = fdLog, fdLog
	check(fd.Start())
	go func() { _ = fd.Wait() }()
	defer func() {
		// The process serving at the end is the restarted one: its pid is in the pid file.
		if pid := readPid(filepath.Join(dir, "frontdoor.pid")); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			waitGone(pid)
		}
		_ = fd.Process.Kill()
	}()
	base := "127.0.0.1:" + port
	if !waitDial(base, 20*time.Second) {
		return result{}, errors.New("frontdoor did not listen")
	}

	st := &storm{o: o, base: base,
		auth: &fasthttp.HostClient{Addr: base, MaxConns: 2048, ReadTimeout: 5 * time.Minute, MaxConnWaitTimeout: 5 * time.Minute}}
	ctx, cancel := context.WithTimeout(context.Background(), o.limit)
	defer cancel()

	// Set-up: every client connected and subscribed, 200 at a time.
	t0 := time.Now()
	sem := make(chan struct{}, 200)
	for i := range o.clients {
		sem <- struct{}{}
		go st.client(ctx, i, func() { <-sem })
	}
	for st.firstRound.Load() < int64(o.clients) {
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("set-up: %d of %d subscribed", st.firstRound.Load(), o.clients)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("  %s: %d clients subscribed in %.1f s; starting page load\n", mode(paced), o.clients, time.Since(t0).Seconds())

	pages := &pageLoad{hc: &fasthttp.HostClient{Addr: base, MaxConns: o.pageClients, ReadTimeout: 5 * time.Minute}}
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for range o.pageClients {
		pwg.Go(func() { pages.loop(pctx) })
	}
	time.Sleep(3 * time.Second) // the baseline

	restart := time.Now()
	st.restartAt.Store(restart.UnixNano())
	pid := readPid(filepath.Join(dir, "frontdoor.pid"))
	if pid <= 0 {
		pstop()
		return result{}, errors.New("no pid file")
	}
	check(syscall.Kill(pid, syscall.SIGUSR2))
	for st.secondRound.Load() < int64(o.clients) {
		if ctx.Err() != nil {
			pstop()
			return result{}, fmt.Errorf("storm: %d of %d resubscribed after %s", st.secondRound.Load(), o.clients, time.Since(restart))
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := time.Now()
	pstop()
	pwg.Wait()
	cancel()

	r := result{resubscribe: end.Sub(restart), refused: st.refused.Load(), window: pacingLine(fdLog.Name())}
	var during, before []float64
	for _, s := range pages.samples() {
		switch {
		case s.err:
			if !s.at.Before(restart) && s.at.Before(end) {
				r.pageErrors++
			}
		case s.at.Before(restart):
			before = append(before, s.ms)
		case s.at.Before(end):
			during = append(during, s.ms)
		}
	}
	r.pages = len(during)
	r.p50, r.p99, r.max = quantile(during, 0.5), quantile(during, 0.99), quantile(during, 1)
	r.baseP99 = quantile(before, 0.99)
	return r, nil
}

// pacingLine finds the old process's "telling clients to reconnect" log line: the sockets,
// authorizations, estimated rate and window it chose.
func pacingLine(log string) string {
	b, err := os.ReadFile(log)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "telling clients to reconnect") {
			continue
		}
		var l struct {
			Sockets int     `json:"sockets"`
			Auths   int     `json:"authorizations"`
			Rate    float64 `json:"auth_per_second"`
			Window  float64 `json:"window"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			return line
		}
		return fmt.Sprintf("%d sockets, %d authorizations, PHP estimated at %.0f/s: closes spread over %.1f s", l.Sockets, l.Auths, l.Rate, l.Window/1000)
	}
	return "(no pacing line in the log)"
}

func mode(paced bool) string {
	if paced {
		return "paced"
	}
	return "unpaced"
}

// storm is the client side: every client reconnects at once on any close, as pusher-js does
// on 4200, and authorizes its two channels again.
type storm struct {
	o                       options
	base                    string
	auth                    *fasthttp.HostClient
	firstRound, secondRound atomic.Int64
	restartAt               atomic.Int64
	refused                 atomic.Int64
	src                     atomic.Uint64
}

func (st *storm) client(ctx context.Context, i int, ready func()) {
	once := sync.OnceFunc(ready)
	defer once()
	rounds := 0
	for ctx.Err() == nil {
		err := st.session(ctx, i, func() {
			rounds++
			switch {
			case rounds == 1:
				st.firstRound.Add(1)
				once()
			case st.restartAt.Load() != 0 && rounds == 2:
				st.secondRound.Add(1)
			}
		})
		if err != nil && ctx.Err() == nil && !errors.Is(err, errReconnect) {
			time.Sleep(100 * time.Millisecond) // refused while the listeners changed hands
		}
	}
}

var errReconnect = errors.New("told to reconnect")

// session is one connection: connect, authorize and subscribe both channels, then read until
// the server closes it.
func (st *storm) session(ctx context.Context, i int, subscribed func()) error {
	// Spread the sockets over 127.0.0.1-8, so the ports of one source address never run short.
	src := net.IPv4(127, 0, 0, byte(1+st.src.Add(1)%8))
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 512,
		NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}
	c, _, err := d.DialContext(ctx, "ws://"+st.base+"/app/"+appKey+"?protocol=7&client=storm&version=1", nil)
	if err != nil {
		return err
	}
	defer c.Close()
	stopWatch := context.AfterFunc(ctx, func() { c.Close() })
	defer stopWatch()
	var established struct {
		SocketID string `json:"socket_id"`
	}
	f, err := readFrame(c)
	if err != nil {
		return err
	}
	if f.Event != "pusher:connection_established" || json.Unmarshal([]byte(f.data()), &established) != nil {
		return fmt.Errorf("first frame %s", f.Event)
	}
	for _, ch := range []string{fmt.Sprintf("private-user.%d", i), fmt.Sprintf("private-orders.%d", i)} {
		auth, err := st.authorize(ctx, established.SocketID, ch)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": ch, "auth": auth}})
		if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
			return err
		}
		for {
			f, err := readFrame(c)
			if err != nil {
				return err
			}
			if f.Event == "pusher_internal:subscription_succeeded" && f.Channel == ch {
				break
			}
			if f.Event == "pusher:error" || f.Event == "pusher:subscription_error" {
				return fmt.Errorf("subscribe %s: %s %s", ch, f.Event, f.data())
			}
			if f.Event == "pusher:ping" {
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:pong","data":{}}`))
			}
		}
	}
	subscribed()
	for {
		f, err := readFrame(c)
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == 4200 {
				return errReconnect
			}
			return err
		}
		if f.Event == "pusher:ping" {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:pong","data":{}}`))
		}
	}
}

// authorize asks PHP through frontdoor, as pusher-js does; on 503 it waits Retry-After and asks
// again (an app would retry the subscription), counting the refusal.
func (st *storm) authorize(ctx context.Context, socketID, channel string) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for ctx.Err() == nil {
		req.Reset()
		req.SetRequestURI("http://" + st.base + "/broadcasting/auth")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(url.Values{"socket_id": {socketID}, "channel_name": {channel}}.Encode())
		if err := st.auth.Do(req, resp); err != nil {
			return "", err
		}
		switch resp.StatusCode() {
		case 200:
			var a struct{ Auth string }
			if err := json.Unmarshal(resp.Body(), &a); err != nil {
				return "", err
			}
			return a.Auth, nil
		case 503:
			st.refused.Add(1)
			wait, _ := strconv.Atoi(string(resp.Header.Peek("Retry-After")))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		default:
			return "", fmt.Errorf("auth: HTTP %d", resp.StatusCode())
		}
	}
	return "", ctx.Err()
}

type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func (f frame) data() string {
	var s string
	if json.Unmarshal(f.Data, &s) == nil {
		return s
	}
	return string(f.Data)
}

func readFrame(c *websocket.Conn) (frame, error) {
	_, msg, err := c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	err = json.Unmarshal(msg, &f)
	return f, err
}

// pageLoad requests pages back to back and keeps every latency with its start time.
type pageLoad struct {
	hc *fasthttp.HostClient
	mu sync.Mutex
	s  []sample
}

type sample struct {
	at  time.Time
	ms  float64
	err bool
}

func (p *pageLoad) loop(ctx context.Context) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for ctx.Err() == nil {
		req.SetRequestURI("http://" + p.hc.Addr + "/dashboard")
		at := time.Now()
		err := p.hc.Do(req, resp)
		s := sample{at: at, ms: float64(time.Since(at).Microseconds()) / 1000, err: err != nil || resp.StatusCode() != 200}
		p.mu.Lock()
		p.s = append(p.s, s)
		p.mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (p *pageLoad) samples() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.s)
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[min(len(v)-1, int(q*float64(len(v))))]
}

func startFPM(o options, dir string) (*exec.Cmd, string, error) {
	bin, err := exec.LookPath(o.phpFPM)
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/" + o.phpFPM); err != nil {
			return nil, "", fmt.Errorf("php-fpm not found: %v", err)
		}
	}
	sock := filepath.Join(dir, "php.sock")
	conf := fmt.Sprintf(`[global]
pid = php-fpm.pid
error_log = php-fpm.log
[storm]
listen = %s
listen.mode = 0666
listen.backlog = 65535
pm = static
pm.max_children = %d
clear_env = yes
php_admin_flag[display_errors] = off
`, sock, o.workers)
	confPath := filepath.Join(dir, "php-fpm.conf")
	check(os.WriteFile(confPath, []byte(conf), 0o644))
	args := []string{"-F", "-O", "-y", confPath, "-p", dir}
	if os.Geteuid() == 0 {
		args = append(args, "-R")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return cmd, sock, nil
		}
		if time.Now().After(deadline) {
			stop(cmd)
			return nil, "", errors.New("php-fpm did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitGone(cmd.Process.Pid)
}

func waitGone(pid int) {
	for range 200 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func readPid(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	n, _ := strconv.Atoi(strings.TrimSpace(line))
	return n
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func waitDial(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "storm: "+format+"\n", a...)
	os.Exit(1)
}
