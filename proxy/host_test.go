package proxy

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// serveChecked serves h behind RefuseHost, as cmd/frontdoor's router does on public listeners.
func serveChecked(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := frontServer(func(ctx *fasthttp.RequestCtx) {
		if !h.RefuseHost(ctx) {
			h.ServeHTTP(ctx)
		}
	})
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(); h.Close() })
	return "http://" + ln.Addr().String()
}

// TestHostNamesAndServerName: with names configured, a request for another Host gets 421 and
// never reaches PHP; SERVER_NAME is always a configured name (the matched one, else the first),
// never the client's, also when AllowAnyHost lets any Host through.
func TestHostNamesAndServerName(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	hosts := []string{"App.Example.com", "www.example.com"}
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, Hosts: hosts}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	seen := &statusCounter{}
	h.SetObserver(seen)
	front := serveChecked(t, h)
	for host, name := range map[string]string{
		"www.example.com:8443": "www.example.com",
		"APP.example.com":      "app.example.com",
		"app.example.com.":     "app.example.com",
	} {
		req := mustReq(t, "GET", front+"/whoami", nil)
		req.Host = host
		resp, b := do(t, req)
		s := decodeSaw(t, resp, b)
		if s.Server["SERVER_NAME"] != name || !strings.EqualFold(s.Server["HTTP_HOST"], host) {
			t.Errorf("Host %s: SERVER_NAME %q HTTP_HOST %q", host, s.Server["SERVER_NAME"], s.Server["HTTP_HOST"])
		}
	}
	for _, host := range []string{"attacker.example", "app.example.com.attacker.example", "example.com", "127.0.0.1"} {
		req := mustReq(t, "GET", front+"/whoami", nil)
		req.Host = host
		req.Header.Set("Accept", "application/json")
		resp, b := do(t, req)
		if resp.StatusCode != 421 || !strings.Contains(string(b), `"message":"Misdirected Request"`) || strings.Contains(string(b), "SERVER_NAME") {
			t.Errorf("Host %s: %d %q", host, resp.StatusCode, b)
		}
	}
	if n := seen.count(421); n != 4 {
		t.Errorf("%d refusals counted, want 4", n)
	}
	// An absolute-form target names the host too (RFC 9112 §3.2.2), whatever Host says.
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET http://attacker.example/whoami HTTP/1.1\r\nHost: app.example.com\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, b := readConnResponse(t, c); resp.StatusCode != 421 {
		t.Errorf("absolute-form target for another host: %d %q", resp.StatusCode, b)
	}

	any, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, Hosts: hosts, AllowAnyHost: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	req := mustReq(t, "GET", serveChecked(t, any)+"/whoami", nil)
	req.Host = "attacker.example"
	resp, b := do(t, req)
	if s := decodeSaw(t, resp, b); s.Server["SERVER_NAME"] != "app.example.com" || s.Server["HTTP_HOST"] != "attacker.example" {
		t.Errorf("AllowAnyHost: SERVER_NAME %q HTTP_HOST %q", s.Server["SERVER_NAME"], s.Server["HTTP_HOST"])
	}
}

func FuzzHostName(f *testing.F) {
	for _, s := range []string{"app.example.com", "APP.example.com:443", "[::1]:8080", "[::1]", "a.b.", "", ":", "[", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		n := hostName(host)
		if n != strings.ToLower(n) {
			t.Fatalf("hostName(%q) = %q", host, n)
		}
	})
}

// statusCounter is an Observer that counts requests by status.
type statusCounter struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *statusCounter) ObserveRequest(_ string, status int, _ time.Duration, _ int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int]int{}
	}
	c.n[status]++
}

func (c *statusCounter) ObserveUpstreamError(string, string) {}

func (c *statusCounter) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[status]
}
