package proxy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// requireBinary finds a binary the integration tests start, or skips (fails under
// FRONTDOOR_REQUIRE_INTEGRATION=1).
func requireBinary(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		if strings.HasPrefix(n, "/") {
			if _, err := os.Stat(n); err == nil {
				return n
			}
		}
	}
	testenv.Missing(t, names[0], "not installed", "Debian: apt-get install -y php8.2-fpm nginx")
	return ""
}

// phpFPM is a php-fpm master the test started, with a pool on a unix socket and one on TCP.
type phpFPM struct {
	t      testing.TB
	bin    string
	dir    string
	lines  []string // extra pool lines
	cmd    *exec.Cmd
	sock   string // unix socket path
	tcp    string // 127.0.0.1:port
	stderr *lockedBuffer
	done   chan struct{}
}

func (p *phpFPM) unixURL() string { return "fastcgi://" + p.sock }
func (p *phpFPM) tcpURL() string  { return "fastcgi://" + p.tcp }

// stop kills php-fpm and waits until it is gone.
func (p *phpFPM) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// lockedBuffer is the shared log sink of internal/testenv.
type lockedBuffer = testenv.LogBuffer

// startPHPFPM starts php-fpm8.2 in the foreground from a config written here: two static pools
// (unix socket and 127.0.0.1), output_buffering off so flush() reaches us, uploads up to 64 MiB.
// poolLines are added to both pools; a later "pm = …" or "pm.max_children = …" overrides the
// static pool's.
func startPHPFPM(t testing.TB, workers int, poolLines ...string) *phpFPM {
	t.Helper()
	bin := requireBinary(t, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm")
	// Unix socket paths must stay under 108 bytes: a short temp dir, not t.TempDir().
	dir, err := os.MkdirTemp("", "fpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp := ln.Addr().String()
	ln.Close()
	p := &phpFPM{t: t, bin: bin, dir: dir, lines: poolLines, sock: filepath.Join(dir, "php.sock"), tcp: tcp}
	p.start(workers)
	t.Cleanup(func() { p.stop() })
	return p
}

// restart stops php-fpm and starts it again on the same sockets with workers static children
// (and the pool lines it was started with): a deploy's php-fpm reload or a crash and restart.
func (p *phpFPM) restart(workers int) {
	p.t.Helper()
	p.stop()
	p.start(workers)
}

func (p *phpFPM) start(workers int) {
	t := p.t
	t.Helper()
	pool := func(name, listen string) string {
		return fmt.Sprintf(`[%s]
listen = %s
listen.mode = 0666
pm = static
pm.max_children = %d
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
php_admin_value[output_buffering] = 0
php_admin_value[upload_max_filesize] = 64M
php_admin_value[post_max_size] = 64M
php_admin_value[max_execution_time] = 60
php_admin_value[log_errors] = On
php_admin_flag[display_errors] = off
%s
`, name, listen, workers, strings.Join(p.lines, "\n"))
	}
	conf := "[global]\npid = php-fpm.pid\nerror_log = php-fpm.log\n" + pool("unix", p.sock) + pool("tcp", p.tcp)
	confPath := filepath.Join(p.dir, "php-fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-O", "-y", confPath, "-p", p.dir}
	if os.Geteuid() == 0 {
		args = append(args, "-R")
	}
	p.stderr, p.done = &lockedBuffer{}, make(chan struct{})
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	p.cmd.SysProcAttr = testenv.DieWithParent()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, done := p.cmd, p.done
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range [][2]string{{"unix", p.sock}, {"tcp", p.tcp}} {
		for {
			c, err := net.DialTimeout(addr[0], addr[1], time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("php-fpm exited: %s", p.stderr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("php-fpm not listening on %s: %v\n%s", addr[1], err, p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// serveFront serves h on a loopback fasthttp.Server set up as cmd/frontdoor sets up its
// public one, and returns its base URL.
func serveFront(t testing.TB, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := frontServer(h.ServeHTTP)
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(); h.Close() })
	return "http://" + ln.Addr().String()
}

// frontServer mirrors cmd/frontdoor's public fasthttp.Server, plus DisablePreParseMultipartForm
// (a proxy must pass multipart bodies on as they came, not parse them first).
func frontServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		NoDefaultServerHeader:        true,
		KeepHijackedConns:            true,
		ReadBufferSize:               4096,
		StreamRequestBody:            true,
		MaxRequestBodySize:           4 << 20,
		ReadTimeout:                  60 * time.Second,
		IdleTimeout:                  75 * time.Second,
		DisablePreParseMultipartForm: true,
	}
}
