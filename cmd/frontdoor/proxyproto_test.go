package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pires/go-proxyproto"
)

// echoUpstream answers with the client address frontdoor passed on.
func echoUpstream(t *testing.T) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "real=%s xff=%s", r.Header.Get("X-Real-IP"), r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// proxied sends a PROXY header (nil: none) and a request on a new connection, and returns the
// whole answer, or "" when the connection was closed without one.
func proxied(t *testing.T, addr string, header []byte, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(header, req...)); err != nil {
		return ""
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no answer and no close within 10 s: %q", b)
	}
	return string(b)
}

func v1Header(src string) []byte {
	return []byte("PROXY TCP4 " + src + " 127.0.0.1 51234 8080\r\n")
}

// refusedMetric is the frontdoor_http_refused_total line for reason on the admin listener.
func refusedMetric(t *testing.T, admin, reason string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(grepLines(string(body), `frontdoor_http_refused_total{reason="`+reason+`"}`))
}

const getClose = "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// TestProxyProtocolListener: a listener with --proxy-protocol takes the visitor's address
// from a trusted balancer's v1 or v2 header (and its X-Forwarded-For is then not believed,
// since the visitor is not a trusted proxy); a connection without a header, or with a malformed
// one, is closed without an answer; a balancer slow to send its header holds neither the
// accept loop nor other connections.
func TestProxyProtocolListener(t *testing.T) {
	addr := freeAddr(t)
	admin := freeAddr(t)
	runServer(t, "--listen", addr, "--admin", admin, "--upstream", echoUpstream(t),
		"--trusted-proxies", "private", "--proxy-protocol", "plain")

	if got := proxied(t, addr, v1Header("203.0.113.7"), "GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"); !strings.Contains(got, "real=203.0.113.7 xff=203.0.113.7") {
		t.Fatalf("v1: %q", got)
	}
	v2, err := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40000},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}).Format()
	if err != nil {
		t.Fatal(err)
	}
	if got := proxied(t, addr, v2, getClose); !strings.Contains(got, "real=2001:db8::7") {
		t.Fatalf("v2: %q", got)
	}

	// A slow balancer: connected, header not sent yet. Others are served meanwhile.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if got := proxied(t, addr, v1Header("203.0.113.8"), getClose); !strings.Contains(got, "real=203.0.113.8") {
		t.Fatalf("with a slow header pending: %q", got)
	}
	start := time.Now()
	_ = slow.SetReadDeadline(time.Now().Add(3 * proxyHeaderTimeout))
	if n, err := slow.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the silent connection got %d bytes, %v", n, err)
	}
	if time.Since(start) > 2*proxyHeaderTimeout {
		t.Fatalf("the silent connection was held %v", time.Since(start))
	}

	for name, header := range map[string][]byte{
		"no header":        nil,
		"malformed header": []byte("PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n"),
		"garbage v2":       append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0x00, 0x02, 0xff, 0xff),
	} {
		if got := proxied(t, addr, header, getClose); got != "" {
			t.Errorf("%s: answered %q, want the connection closed", name, got)
		}
	}
	// Counted as refusals (the silent connection too: no header before the timeout).
	if line := refusedMetric(t, admin, "proxy_protocol"); line == "" || strings.HasSuffix(line, " 0") || strings.HasSuffix(line, " 1") || strings.HasSuffix(line, " 2") {
		t.Fatalf("missing or malformed headers counted: %q, want at least 3", line)
	}
}

// TestProxyProtocolOnlyFromTrustedPeers: a peer outside --trusted-proxies is closed at accept
// on a PROXY listener, header or not, and the listener keeps accepting.
func TestProxyProtocolOnlyFromTrustedPeers(t *testing.T) {
	addr := freeAddr(t)
	admin := freeAddr(t)
	runServer(t, "--listen", addr, "--admin", admin, "--upstream", echoUpstream(t),
		"--trusted-proxies", "10.0.0.0/8", "--proxy-protocol", "all")
	for range 3 {
		if got := proxied(t, addr, v1Header("203.0.113.7"), getClose); got != "" {
			t.Fatalf("an untrusted peer's header was used: %q", got)
		}
	}
	if line := refusedMetric(t, admin, "proxy_protocol_untrusted"); !strings.HasSuffix(line, " 3") {
		t.Fatalf("refusals counted: %q, want 3", line)
	}
}

// TestProxyHeaderOnPlainListener: a listener not configured for the PROXY protocol reads a
// header as a malformed request: 400, and the address in it is never used.
func TestProxyHeaderOnPlainListener(t *testing.T) {
	addr := freeAddr(t)
	runServer(t, "--listen", addr, "--admin", "off", "--upstream", echoUpstream(t), "--trusted-proxies", "private")
	got := proxied(t, addr, v1Header("203.0.113.7"), getClose)
	if line, _, _ := strings.Cut(got, "\r\n"); !strings.HasPrefix(line, "HTTP/1.1 400") || strings.Contains(got, "203.0.113.7") {
		t.Fatalf("answered %q", got)
	}
	// The same listener serves a plain request, and believes the trusted peer's X-Forwarded-For.
	resp := rawRequest(t, addr, "GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("plain request: %q", resp)
	}
	body := proxied(t, addr, nil, "GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
	if !strings.Contains(body, "real=203.0.113.9 xff=203.0.113.9, 127.0.0.1") {
		t.Fatalf("trusted loopback peer: %q", body)
	}
}

// TestTrustedProxySettings: --trusted-proxies and --proxy-protocol from flags, FRONTDOOR_*, the
// Laravel .env and YAML; bad values name their key.
func TestTrustedProxySettings(t *testing.T) {
	s, err := load(t, []string{"--trusted-proxies", "cloudflare,10.0.0.0/8", "--trusted-proxies", "private", "--proxy-protocol", "https,http"}, env())
	if err != nil || fmt.Sprint(s.Proxy.TrustedProxies) != "[cloudflare 10.0.0.0/8 private]" || fmt.Sprint(s.ProxyProtocol) != "[https http]" {
		t.Fatalf("flags: %v %v %v", s.Proxy.TrustedProxies, s.ProxyProtocol, err)
	}
	s, err = load(t, nil, env("FRONTDOOR_TRUSTED_PROXIES", "private", "FRONTDOOR_PROXY_PROTOCOL", "plain"))
	if err != nil || fmt.Sprint(s.Proxy.TrustedProxies) != "[private]" || fmt.Sprint(s.ProxyProtocol) != "[plain]" {
		t.Fatalf("env: %v %v %v", s.Proxy.TrustedProxies, s.ProxyProtocol, err)
	}
	dotenv := writeFile(t, ".env", "FRONTDOOR_TRUSTED_PROXIES=cloudflare,192.0.2.0/24\n")
	s, err = load(t, []string{"--env-file", dotenv}, env())
	if err != nil || fmt.Sprint(s.Proxy.TrustedProxies) != "[cloudflare 192.0.2.0/24]" {
		t.Fatalf(".env: %v %v", s.Proxy.TrustedProxies, err)
	}
	yml := writeFile(t, "frontdoor.yaml", "proxy_protocol: [https]\nproxy:\n  trusted_proxies: [private, 198.51.100.4]\n")
	s, err = load(t, []string{"--config", yml, "--env-file", ""}, env())
	if err != nil || fmt.Sprint(s.Proxy.TrustedProxies) != "[private 198.51.100.4]" || fmt.Sprint(s.ProxyProtocol) != "[https]" {
		t.Fatalf("yaml: %v %v %v", s.Proxy.TrustedProxies, s.ProxyProtocol, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trusted-proxies", "10.0.0.0/40"}, "10.0.0.0/40"},
		{[]string{"--trusted-proxies", "private", "--proxy-protocol", "ftp"}, "proxy-protocol"},
		{[]string{"--proxy-protocol", "plain"}, "--trusted-proxies"},
	} {
		if _, err := load(t, tc.args, env()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// TestProxyProtocolBeforeTLS: on the TLS listener the header comes before the handshake (a
// TCP balancer passing TLS through), and PHP learns the visitor's address and https.
func TestProxyProtocolBeforeTLS(t *testing.T) {
	httpsAddr, httpAddr := freeAddr(t), freeAddr(t)
	runServer(t, "--env-file", "", "--admin", "off", "--tls", "self-signed", "--domain", "app.example.com",
		"--https-addr", httpsAddr, "--http-addr", httpAddr, "--upstream", echoUpstream(t),
		"--trusted-proxies", "127.0.0.1", "--proxy-protocol", "https",
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	c, err := net.DialTimeout("tcp", httpsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(v1Header("198.51.100.23")); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "app.example.com"})
	if _, err := tc.Write([]byte("GET /who HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(tc)
	if !strings.Contains(string(b), "real=198.51.100.23") {
		t.Fatalf("answered %q", b)
	}
}

// TestProxyProtocolWebSocket: a Pusher socket through a PROXY protocol listener connects,
// subscribes and answers pings (it is served by the goroutine-per-connection path).
func TestProxyProtocolWebSocket(t *testing.T) {
	addr := freeAddr(t)
	runServer(t, "--listen", addr, "--admin", "off", "--upstream", echoUpstream(t),
		"--trusted-proxies", "private", "--proxy-protocol", "plain",
		"--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDial: func(network, a string) (net.Conn, error) {
		c, err := net.Dial(network, a)
		if err == nil {
			_, err = c.Write(v1Header("203.0.113.7"))
		}
		return c, err
	}}
	c, _, err := d.Dial("ws://"+addr+"/app/key1?protocol=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev := readEvent(t, c); ev.Event != "pusher:connection_established" {
		t.Fatalf("first event %+v", ev)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:ping","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	if ev := readEvent(t, c); ev.Event != "pusher:pong" {
		t.Fatalf("answer to a ping %+v", ev)
	}
}
