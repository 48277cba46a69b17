package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	_ "net/http/pprof" // for benchPprofEnv
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/gcfloor"
	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// startNginx runs nginx in the foreground with Laravel's canonical server block (as in
// Laravel's deployment docs, minus the two add_header lines, which are the app's choice)
// in front of the php-fpm unix socket, and returns its base URL and pid. No FastCGI keepalive, as in
// that block: with "keepalive N" (and fastcgi_keep_conn) above php-fpm's worker count, idle
// kept connections pin every worker and new requests wait out fastcgi_read_timeout (504);
// frontdoor's pool avoids that by design.
func startNginx(t testing.TB, root, fpmSock string, httpUpstream string) server {
	t.Helper()
	bin := requireBinary(t, "nginx", "/usr/sbin/nginx")
	for _, f := range []string{"/etc/nginx/fastcgi_params", "/etc/nginx/mime.types"} {
		if _, err := os.Stat(f); err != nil {
			requireBinary(t, f) // skips or fails with the install hint
		}
	}
	dir, err := os.MkdirTemp("", "nginx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers read the test tree and the socket as the test does
	}
	proxyLocation, proxyUpstream := "", ""
	if httpUpstream != "" {
		// /http/ as Laravel Octane's documented Nginx block (no upstream keepalive); /httpka/
		// the same with a keepalive pool, Nginx at its best.
		proxyUpstream = fmt.Sprintf("upstream app { server %s; keepalive 64; }", strings.TrimPrefix(httpUpstream, "http://"))
		for _, l := range [][2]string{{"/http/", httpUpstream}, {"/httpka/", "http://app"}} {
			proxyLocation += fmt.Sprintf(`
        location %s {
            proxy_pass %s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }`, l[0], l[1])
		}
	}
	conf := fmt.Sprintf(`%s
worker_processes 2;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    client_max_body_size 64m;
    client_body_temp_path %[2]s/body;
    fastcgi_temp_path %[2]s/fastcgi;
    proxy_temp_path %[2]s/proxy;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    %[7]s
    server {
        listen %[4]s;
        server_name _;
        root %[5]s;

        index index.php;
        charset utf-8;

        location / {
            try_files $uri $uri/ /index.php?$query_string;
        }
        location = /favicon.ico { access_log off; log_not_found off; }
        location = /robots.txt  { access_log off; log_not_found off; }

        error_page 404 /index.php;

        location ~ ^/index\.php(/|$) {
            fastcgi_pass unix:%[3]s;
            fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
            include /etc/nginx/fastcgi_params;
            fastcgi_hide_header X-Powered-By;
        }
        location ~ /\.(?!well-known).* {
            deny all;
        }
        %[6]s
    }
}
`, user, dir, fpmSock, addr, root, proxyLocation, proxyUpstream)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-g", "daemon off;")
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s %s", &stderr, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening: %v %s", err, &stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return server{"http://" + addr, cmd.Process.Pid}
}

// answer is what both servers are compared on.
type answer struct {
	status   int
	ctype    string // media type only: nginx's charset directive and Go's mime table differ on parameters
	location string
	cookies  string
	length   string // Content-Length as sent, "" when the body is chunked
	body     []byte
}

func fetch(t *testing.T, method, u string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	req := mustReq(t, method, u, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, b := do(t, req)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/javascript" {
		mt = "text/javascript" // RFC 9239 made text/javascript the one name; Nginx 1.22's mime.types predates it
	}
	length := ""
	if resp.ContentLength >= 0 {
		length = fmt.Sprint(resp.ContentLength)
	}
	return answer{resp.StatusCode, mt, resp.Header.Get("Location"), strings.Join(resp.Header.Values("Set-Cookie"), "\n"), length, b}
}

// TestSameAnswersAsNginx sends the same requests to frontdoor and to Nginx with Laravel's
// server block, both in front of the same php-fpm pool and public/ directory, and compares
// status, key headers and body (for the echo page: what PHP saw, minus what names the server).
func TestSameAnswersAsNginx(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	pub := root(t)
	ngx := startNginx(t, pub, fpm.sock, "").url
	h, err := New(Config{Root: pub, Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	fd := serveFront(t, h)

	form := "email=a%40b.c&remember=1"
	for _, c := range []struct {
		method, path, body string
		hdr                map[string]string
	}{
		{"GET", "/app.css", "", nil},
		{"GET", "/robots.txt", "", nil},
		{"GET", "/build/assets/app-abc123.js", "", nil},
		{"GET", "/", "", nil},
		{"GET", "/orders/7?page=2&sort=-id", "", map[string]string{"Cookie": "a=1; b=2", "X-Custom": "v"}},
		{"GET", "/missing/page.html?x", "", nil},
		{"POST", "/login?next=/home", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"PUT", "/api/items/3", `{"name":"x"}`, map[string]string{"Content-Type": "application/json"}},
		{"DELETE", "/api/items/3", "", nil},
		{"GET", "/status", "", nil},
		{"GET", "/redirect", "", nil},
		{"GET", "/cookies", "", nil},
		{"GET", "/no-content", "", nil},
		{"GET", "/big-header?n=3000", "", nil},
		{"GET", "/download?blocks=40", "", nil},
		{"GET", "/download?blocks=40&length=1", "", nil},
		{"GET", "/index.php?direct=1", "", nil},
		{"HEAD", "/cookies", "", nil},
		{"HEAD", "/download?blocks=2&length=1", "", nil},
		{"HEAD", "/app.css", "", nil},
	} {
		t.Run(c.method+c.path, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			a := fetch(t, c.method, fd+c.path, body, c.hdr)
			if body != nil {
				body = strings.NewReader(c.body)
			}
			b := fetch(t, c.method, ngx+c.path, body, c.hdr)
			if a.status != b.status || a.ctype != b.ctype || a.location != b.location || a.cookies != b.cookies {
				t.Errorf("frontdoor %d %q %q %q\n    nginx %d %q %q %q", a.status, a.ctype, a.location, a.cookies, b.status, b.ctype, b.location, b.cookies)
			}
			if c.method == "HEAD" && a.length != b.length {
				t.Errorf("HEAD Content-Length: frontdoor %q, nginx %q", a.length, b.length)
			}
			if a.ctype != "application/json" || !bytes.HasPrefix(a.body, []byte(`{"server"`)) {
				if !bytes.Equal(a.body, b.body) {
					t.Errorf("bodies differ: frontdoor %d bytes %.80q, nginx %d bytes %.80q", len(a.body), a.body, len(b.body), b.body)
				}
				return
			}
			var sa, sb phpSaw
			if json.Unmarshal(a.body, &sa) != nil || json.Unmarshal(b.body, &sb) != nil {
				t.Fatalf("echo pages: %.100q / %.100q", a.body, b.body)
			}
			// What names the server or the connection differs by design.
			for _, k := range []string{"SERVER_SOFTWARE", "SERVER_PORT", "REMOTE_PORT", "HTTP_HOST", "HTTP_X_REQUEST_ID",
				"REQUEST_TIME", "REQUEST_TIME_FLOAT", "SERVER_NAME", "REMOTE_USER", "HTTP_PROXY"} {
				delete(sa.Server, k)
				delete(sb.Server, k)
			}
			for k, v := range sb.Server {
				if sa.Server[k] != v {
					t.Errorf("$_SERVER[%s]: frontdoor %q, nginx %q", k, sa.Server[k], v)
				}
			}
			for k, v := range sa.Server {
				if _, ok := sb.Server[k]; !ok {
					t.Errorf("$_SERVER[%s] = %q only under frontdoor", k, v)
				}
			}
			if fmt.Sprint(sa.Get, sa.Post, sa.Cookies, sa.BodySHA256) != fmt.Sprint(sb.Get, sb.Post, sb.Cookies, sb.BodySHA256) {
				t.Errorf("request data differs: %v %v %v / %v %v %v", sa.Get, sa.Post, sa.Cookies, sb.Get, sb.Post, sb.Cookies)
			}
		})
	}

	// Refused by both, each its own way (frontdoor 404, nginx 403), leaking nothing.
	for _, p := range []string{"/.env", "/.git/HEAD"} {
		a, b := fetch(t, "GET", fd+p, nil, nil), fetch(t, "GET", ngx+p, nil, nil)
		if a.status < 400 || b.status < 400 || bytes.Contains(a.body, []byte("secret")) {
			t.Errorf("%s: frontdoor %d, nginx %d", p, a.status, b.status)
		}
	}
}

// benchClients are the concurrent client connections each server is measured at: a few more
// clients than php-fpm has workers, many more, and a crowd.
var benchClients = []int{16, 50, 200}

// server is a process a benchmark measures: where it answers and whose CPU time it uses (Nginx's
// master, whose workers ProcessCPU adds).
type server struct {
	url string
	pid int
}

// benchmarkTarget drives GETs at target from conns goroutines, each with its own kept connection
// of a fasthttp client (a lighter load generator than net/http, so the servers, not the client,
// are measured), and reports requests/s, p99, the connections the client really held, and the
// CPU time per request of the server and of the app upstream behind it (upstream.pid 0: none).
// CPU time per request holds up when other jobs share the cores; req/s does not.
func benchmarkTarget(b *testing.B, srv server, path string, conns int, upstream server) {
	target := srv.url + path
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	c := &fasthttp.HostClient{Addr: u.Host, MaxConns: conns, MaxConnWaitTimeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	get := func(req *fasthttp.Request, resp *fasthttp.Response) (int, error) {
		req.SetRequestURI(target)
		err := c.Do(req, resp)
		return resp.StatusCode(), err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	if st, err := get(req, resp); err != nil || st != 200 {
		b.Fatalf("%s: %d %v", target, st, err)
	}
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)
	lat := make([][]time.Duration, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0, up0 := testenv.ProcessCPU(srv.pid), testenv.ProcessCPU(upstream.pid)
	b.ResetTimer()
	start := time.Now()
	for i := range conns {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				st, err := get(req, resp)
				if err != nil || st != 200 {
					b.Errorf("%d %v", st, err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, upCPU := testenv.ProcessCPU(srv.pid)-cpu0, testenv.ProcessCPU(upstream.pid)-up0
	all := slices.Concat(lat...)
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	// Connections still open at the end: the load really ran on conns connections (at most
	// conns, as MaxConns caps them; fewer only when b.N is too small to need them all).
	b.ReportMetric(float64(c.ConnsCount()), "conns")
	if srv.pid != 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
	}
	if upstream.pid != 0 {
		b.ReportMetric(float64(upCPU.Microseconds())/float64(b.N), "upstream-cpu-µs/req")
	}
}

// BenchmarkFrontdoorVsNginx compares frontdoor and Nginx (Laravel's server block, 2 workers)
// on the same machine, same php-fpm pool (4 workers), same files, same HTTP app server (in its
// own process, standing in for Octane). frontdoor runs in its own process like nginx (this test
// binary re-executed) with its default settings; the load generator shares the cores. Every
// case runs at each of benchClients (a fresh frontdoor each time, as a user starts it), the
// HTTP upstream with the app server alone ("direct") as the ceiling neither proxy can pass. Run:
//
//	go test -run XXX -bench FrontdoorVsNginx -benchtime 5s ./proxy/
//	go test -run XXX -bench 'FrontdoorVsNginx/http_upstream_keepalive' -benchtime 5s ./proxy/
//	go test -run XXX -bench 'FrontdoorVsNginx/^fastcgi$' -benchtime 5s -count 2 ./proxy/
func BenchmarkFrontdoorVsNginx(b *testing.B) {
	fpm := startPHPFPM(b, 4)
	pub, _ := filepath.Abs("testdata/app/public")
	app := startChild(b, benchUpstreamEnv, "1")
	ngx := startNginx(b, pub, fpm.sock, app.url)
	fcgi := Config{Root: pub, Upstreams: []string{fpm.unixURL()}}
	fcgiMax := Config{Root: pub, Upstreams: []string{fpm.unixURL() + "?max_conns=4"}}
	httpUp := Config{Root: pub, Upstreams: []string{app.url}}
	for _, c := range []struct {
		name      string
		cfg       Config
		path, ngx string
		conns     []int
		upstream  server
	}{
		{"static", fcgi, "/app.css", "/app.css", benchClients, server{}},
		{"fastcgi", fcgi, "/cookies", "/cookies", benchClients, server{}},
		{"fastcgi_max_conns", fcgiMax, "/cookies", "", benchClients, server{}},
		{"http_upstream", httpUp, "/http/x", "/http/x", benchClients, app.server},
		{"http_upstream_keepalive", httpUp, "/http/x", "/httpka/x", benchClients, app.server},
	} {
		for _, conns := range c.conns {
			name := fmt.Sprintf("%s/conns=%d", c.name, conns)
			// One frontdoor process at a time: kept FastCGI connections of an idle one would pin
			// php-fpm workers the next one needs.
			fd := startChild(b, benchServeEnv, c.cfg)
			b.Run(name+"/frontdoor", func(b *testing.B) { benchmarkTarget(b, fd.server, c.path, conns, c.upstream) })
			fd.stop()
			if c.ngx != "" {
				b.Run(name+"/nginx", func(b *testing.B) { benchmarkTarget(b, ngx, c.ngx, conns, c.upstream) })
			}
			if c.upstream.pid != 0 && c.name == "http_upstream_keepalive" {
				b.Run(name+"/direct", func(b *testing.B) { benchmarkTarget(b, c.upstream, c.ngx, conns, server{}) })
			}
		}
	}
}

// benchUpstreamHandler is a small app standing in for Octane: a short HTML page.
func benchUpstreamHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/html; charset=UTF-8")
	ctx.SetBodyString("<!doctype html><p>hello from the app</p>\n")
}

// startBenchUpstream serves benchUpstreamHandler in this process.
func startBenchUpstream(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: benchUpstreamHandler}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// Environment variables that make the test binary serve instead of running tests:
// benchServeEnv frontdoor's proxy with a Config (JSON), benchUpstreamEnv benchUpstreamHandler.
const (
	benchServeEnv    = "FRONTDOOR_PROXY_BENCH_SERVE"
	benchUpstreamEnv = "FRONTDOOR_PROXY_BENCH_UPSTREAM"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchServeEnv); spec != "" {
		var cfg Config
		if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
			panic(err)
		}
		h, err := New(cfg, zerolog.Nop())
		if err != nil {
			panic(err)
		}
		_, gogc := os.LookupEnv("GOGC")
		gcfloor.Start(gcfloor.DefaultFloor, gogc) // as cmd/frontdoor's serve does
		if addr := os.Getenv(benchPprofEnv); addr != "" {
			go func() { _ = http.ListenAndServe(addr, nil) }() // the default mux has net/http/pprof's handlers
		}
		serveChild(frontServer(h.ServeHTTP))
		return
	}
	if os.Getenv(benchUpstreamEnv) != "" {
		serveChild(&fasthttp.Server{Handler: benchUpstreamHandler})
		return
	}
	os.Exit(m.Run())
}

// benchPprofEnv, set to a loopback address in the environment of a benchmark, makes each
// frontdoor child serve net/http/pprof there too, for a CPU profile under the benchmark's load
// (go tool pprof 'http://ADDR/debug/pprof/profile?seconds=5'). The children run one at a time,
// so the address is free again for the next.
const benchPprofEnv = "FRONTDOOR_PROXY_BENCH_PPROF"

// serveChild is the child's side of startChild: it prints its address and serves.
func serveChild(srv *fasthttp.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().String())
	_ = srv.Serve(ln)
}

// child is a server the test binary runs in a child process.
type child struct {
	server
	stop func()
}

// startChild re-executes the test binary with env set to spec (JSON) so that it serves (see
// TestMain), and returns its URL, pid and a stop function.
func startChild(b *testing.B, env string, spec any) child {
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), env+"="+string(js))
	cmd.SysProcAttr = testenv.DieWithParent()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	b.Cleanup(stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("child serving %s: %v", env, err)
	}
	return child{server{"http://" + strings.TrimSpace(line), cmd.Process.Pid}, stop}
}
