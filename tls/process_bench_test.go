package tls

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// Servers in their own process, for a like-for-like comparison: the same clients (this process)
// against the frontdoor binary and against Nginx, both serving the same certificate (ECDSA P-256)
// and the same bodies as static files. BenchmarkHandshake and BenchmarkRequests above run the
// server in the client's process, which flatters it; these are the figures to put beside Nginx.

// BenchmarkFrontdoorProcess runs against the binary named by FRONTDOOR_BIN (go build -o
// ./cmd/frontdoor first); skipped without it.
func BenchmarkFrontdoorProcess(b *testing.B) {
	bin := os.Getenv("FRONTDOOR_BIN")
	if bin == "" {
		b.Skip("FRONTDOOR_BIN not set (go build -o /tmp/frontdoor ./cmd/frontdoor)")
	}
	dir := benchFiles(b)
	tlsPort, plainPort := freeTCPPort(b), freeTCPPort(b)
	pid := startProcess(b, "frontdoor", fmt.Sprintf("127.0.0.1:%d", tlsPort), bin, "serve",
		"--tls", "files", "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"),
		"--https-addr", fmt.Sprintf("127.0.0.1:%d", tlsPort), "--http-addr", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(b)),
		"--listen", fmt.Sprintf("127.0.0.1:%d", plainPort), "--root", filepath.Join(dir, "www"),
		"--admin", "off", "--env-file", "", "--log-level", "warn", "--app-id", "bench", "--app-key", "bench", "--app-secret", "bench")
	runProcessBench(b, tlsPort, plainPort, pid)
}

// BenchmarkNginx runs against Nginx (worker_processes auto, access log off, session tickets and a
// shared session cache as production configurations have them);
// skipped when nginx is not installed.
func BenchmarkNginx(b *testing.B) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			b.Skip("nginx not installed (apt-get install -y nginx)")
		}
	}
	dir := benchFiles(b)
	tlsPort, plainPort := freeTCPPort(b), freeTCPPort(b)
	conf := nginxConf(dir, tlsPort, plainPort)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	pid := startProcess(b, "nginx", fmt.Sprintf("127.0.0.1:%d", tlsPort), bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	runProcessBench(b, tlsPort, plainPort, pid)
}

func runProcessBench(b *testing.B, tlsPort, plainPort, pid int) {
	roots := x509.NewCertPool()
	roots.AddCert(benchCert().cert.Leaf)
	s := &benchServer{tlsAddr: fmt.Sprintf("127.0.0.1:%d", tlsPort), plainAddr: fmt.Sprintf("127.0.0.1:%d", plainPort), roots: roots, pid: pid}
	benchHandshakes(b, "", s, false)
	for _, size := range benchSizes {
		benchRequests(b, "", s, size.name, size.n, "/"+size.name)
	}
}

// benchFiles writes the shared certificate and the static bodies (www/body=2B, www/body=16KiB).
func benchFiles(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	lc := benchCert()
	keyDER, err := x509.MarshalPKCS8PrivateKey(lc.cert.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lc.cert.Certificate[0]}))
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	os.Mkdir(filepath.Join(dir, "www"), 0o755)
	write(filepath.Join("www", "index.html"), []byte("ok"))
	for _, size := range benchSizes {
		write(filepath.Join("www", size.name), []byte(strings.Repeat("x", size.n)))
	}
	return dir
}

func nginxConf(dir string, tlsPort, plainPort int) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers read the files in the temp dir
	}
	conf := fmt.Sprintf(`%s
worker_processes auto;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[2]s; proxy_temp_path %[2]s; fastcgi_temp_path %[2]s; uwsgi_temp_path %[2]s; scgi_temp_path %[2]s;
	keepalive_requests 1000000;
	default_type text/plain;
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_session_tickets on;
	ssl_session_cache shared:SSL:10m;
	server {
		listen 127.0.0.1:%[3]d ssl;
		listen 127.0.0.1:%[4]d;
		server_name bench.frontdoor.test;
		ssl_certificate %[2]s/cert.pem;
		ssl_certificate_key %[2]s/key.pem;
		root %[2]s/www;
	}
}
`, user, dir, tlsPort, plainPort)
	return conf
}

// startProcess runs a server until the benchmark ends, waits until addr accepts connections and
// returns its pid.
func startProcess(b *testing.B, name, addr, bin string, args ...string) int {
	b.Helper()
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not start:\n%s", name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeTCPPort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
