package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawRequest sends req on a new connection and returns the status line of the answer.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %.40q: %v", req, err)
	}
	return strings.TrimSpace(line)
}

// Malformed requests: the answer names the class (400, 431), no header value a client sent
// reaches the log, the lines are rate-limited, and a Laravel-sized cookie set still passes.
func TestMalformedRequestsAreRefusedQuietly(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cookie bytes %d", len(r.Header.Get("Cookie")))
	}))
	defer up.Close()
	addr := freeAddr(t)
	p := startFrontdoor(t, t.TempDir(), "serve", "--listen", addr, "--admin", "off", "--upstream", up.URL,
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p.waitLog(t, `"listening"`)

	// A broken header line after credentials: fasthttp's error text would quote them.
	const secret = "laravel_session=s3cr3t-session-value"
	bad := "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken-value\r\nCookie: " + secret + "\r\nBad Header\x01: v\r\n\r\n"
	for range 200 {
		if got := rawRequest(t, addr, bad); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Fatalf("malformed request answered %q, want 400", got)
		}
	}
	// 10 KiB of cookies (several Laravel sessions, analytics): accepted.
	big := "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=" + strings.Repeat("c", 10<<10) + "\r\nConnection: close\r\n\r\n"
	if got := rawRequest(t, addr, big); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("10 KiB cookie header answered %q, want 200", got)
	}
	// Past the header limit: 431, not a generic 400.
	huge := "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=" + strings.Repeat("c", 20<<10) + "\r\n\r\n"
	if got := rawRequest(t, addr, huge); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Fatalf("20 KiB header answered %q, want 431", got)
	}

	p.waitLog(t, "refused a malformed request")
	log := p.log()
	for _, leak := range []string{"s3cr3t", "t0ken", "Bearer"} {
		if strings.Contains(log, leak) {
			t.Fatalf("the log holds %q from a refused request:\n%s", leak, log)
		}
	}
	if n := strings.Count(log, "refused a malformed request"); n > 3 {
		t.Fatalf("%d log lines for 200 malformed requests: want them rate-limited", n)
	}
}
