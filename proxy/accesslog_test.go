package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// accessLines returns the access log lines (msg "request") written to logs so far.
func accessLines(t *testing.T, logs *lockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if l == "" || json.Unmarshal([]byte(l), &m) != nil || m["message"] != "request" {
			continue
		}
		out = append(out, m)
	}
	return out
}

// waitAccessLine waits for the access line with this request id.
func waitAccessLine(t *testing.T, logs *lockedBuffer, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range accessLines(t, logs) {
			if m["request_id"] == id {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access line for %s in\n%s", id, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAccessLogLine: the line has duration_ms in milliseconds, the request target as sent, the
// query with secret parameters redacted, the User-Agent and Referer (capped, the Referer's
// query redacted too), and a 413 from the body limit is not put on an upstream or on "static".
func TestAccessLogLine(t *testing.T) {
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	logs := &lockedBuffer{}
	h, err := New(Config{Root: root(t), Upstreams: []string{up}, MaxBody: 1 << 10, AccessLog: true}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)

	req := mustReq(t, "GET", front+"/search?q=cats&token=tok-abc&api_key=K1&auth_signature=S1&Password=pw1&page=2&signature", nil)
	req.Header.Set("X-Request-Id", "log-1")
	req.Header.Set("User-Agent", "Mozilla/5.0 "+strings.Repeat("u", 1000))
	req.Header.Set("Referer", "https://app.test/reset?email=a%40b.c&token=ref-tok")
	if resp, b := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	m := waitAccessLine(t, logs, "log-1")
	if q := m["query"]; q != "q=cats&token=[redacted]&api_key=[redacted]&auth_signature=[redacted]&Password=[redacted]&page=2&signature" {
		t.Errorf("query %q", q)
	}
	if m["path"] != "/search" || m["method"] != "GET" || m["status"] != float64(200) || m["upstream"] != up {
		t.Errorf("line %v", m)
	}
	if ua, _ := m["user_agent"].(string); !strings.HasPrefix(ua, "Mozilla/5.0 uuu") || len(ua) != logUserAgentMax {
		t.Errorf("user_agent %d bytes: %.40q", len(ua), ua)
	}
	if m["referer"] != "https://app.test/reset?email=a%40b.c&token=[redacted]" {
		t.Errorf("referer %q", m["referer"])
	}
	if d, ok := m["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms %v", m["duration_ms"])
	}
	if _, ok := m["duration"]; ok {
		t.Error("the old duration field is still there")
	}
	for _, secret := range []string{"tok-abc", "K1", "S1", "pw1", "ref-tok"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("%q reached the log", secret)
		}
	}

	// The target as sent: not cleaned into /.env.
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /../.env HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: log-2\r\n\r\n")
	if resp, _ := readConnResponse(t, c); resp.StatusCode != 404 {
		t.Fatalf("/../.env: %d", resp.StatusCode)
	}
	if m := waitAccessLine(t, logs, "log-2"); m["path"] != "/../.env" || m["status"] != float64(404) {
		t.Errorf("/../.env logged as %v", m)
	}

	// A body over the limit is refused before any upstream is chosen.
	req = mustReq(t, "POST", front+"/upload", bytes.NewReader(make([]byte, 2<<10)))
	req.Header.Set("X-Request-Id", "log-3")
	if resp, _ := do(t, req); resp.StatusCode != 413 {
		t.Fatalf("over max body: %d", resp.StatusCode)
	}
	if m := waitAccessLine(t, logs, "log-3"); m["upstream"] != "-" || m["status"] != float64(413) {
		t.Errorf("413 logged as %v", m)
	}
}

func FuzzRedactQuery(f *testing.F) {
	for _, s := range []string{"a=1&token=x", "auth_signature=abc&auth_key=k", "%74oken=x", "=x&&", "password", "k%zz=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := redactQuery(q)
		if strings.Count(out, "&") != strings.Count(q, "&") {
			t.Fatalf("redactQuery(%q) = %q changed the parameter count", q, out)
		}
		for _, pair := range strings.Split(out, "&") {
			if name, v, ok := strings.Cut(pair, "="); ok && secretParam(name) && v != "[redacted]" {
				t.Fatalf("redactQuery(%q) kept %q", q, pair)
			}
		}
	})
}
