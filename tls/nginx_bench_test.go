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
)

// BenchmarkNginx runs the same clients against Nginx serving the same certificate (ECDSA P-256)
// and the same bodies as static files, worker_processes auto: the reference figures for
// docs/benchmarks.md. Skipped when nginx is not installed.
func BenchmarkNginx(b *testing.B) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			b.Skip("nginx not installed (apt-get install -y nginx)")
		}
	}
	s := startNginx(b, bin)
	benchHandshakes(b, "", s)
	for _, size := range benchSizes {
		benchRequests(b, "", s, size.name, size.n, "/"+size.name)
	}
}

func startNginx(b *testing.B, bin string) *benchServer {
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
	for _, size := range benchSizes {
		write(filepath.Join("www", size.name), []byte(strings.Repeat("x", size.n)))
	}
	tlsPort, plainPort := freeTCPPort(b), freeTCPPort(b)
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
	ssl_session_cache off;
	ssl_session_tickets off;
	server {
		listen 127.0.0.1:%[3]d ssl;
		listen 127.0.0.1:%[4]d;
		server_name bench.frontdoor.test;
		ssl_certificate %[2]s/cert.pem;
		ssl_certificate_key %[2]s/key.pem;
		root %[2]s/www;
		location = / { return 200 "ok"; }
	}
}
`, user, dir, tlsPort, plainPort)
	write("nginx.conf", []byte(conf))
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGQUIT); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("nginx did not start:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	roots := x509.NewCertPool()
	roots.AddCert(lc.cert.Leaf)
	return &benchServer{tlsAddr: addr, plainAddr: fmt.Sprintf("127.0.0.1:%d", plainPort), roots: roots}
}

func freeTCPPort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
