package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startSlowUpload opens a connection to front and sends the headers of a POST announcing
// length bytes, then the first sent bytes of body, and nothing more.
func startSlowUpload(t *testing.T, front, path string, body []byte, sent int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, len(body))
	if _, err := c.Write(body[:sent]); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitBuffered waits until the handler holds at least n bytes of request bodies.
func waitBuffered(t *testing.T, h *Handler, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.bodies.used.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the handler holds %d bytes of bodies, want %d", h.bodies.used.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertNoAnswerYet checks that nothing came back on c: the request is still being received.
func assertNoAnswerYet(t *testing.T, c net.Conn, name string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var one [1]byte
	n, err := c.Read(one[:])
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: answered or closed before its body was complete: %d bytes, %v", name, n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// readConnResponse reads one response from c (within a generous failure bound).
func readConnResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestSlowUploadsDoNotPinPHPWorkers: two clients announce a 1 MB body, send 8 KiB of it and
// stall. With a php-fpm pool of 2 workers, an unrelated request is still answered while both
// uploads are stalled: bodies are read in full before a worker is taken. Then the uploads
// finish and reach PHP whole.
func TestSlowUploadsDoNotPinPHPWorkers(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, ReadTimeout: 30 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)

	body := randomBytes(t, 1000000)
	const sent = 8 << 10
	slow := []net.Conn{startSlowUpload(t, front, "/upload", body, sent), startSlowUpload(t, front, "/upload", body, sent)}
	waitBuffered(t, h, 2*sent) // both uploads are in the handler now

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil).WithContext(ctx))
	if resp.StatusCode != 200 || string(b) != "cookies set" {
		t.Fatalf("victim: %d %q", resp.StatusCode, b)
	}
	for i, c := range slow {
		assertNoAnswerYet(t, c, fmt.Sprintf("upload %d", i))
	}

	want := fmt.Sprintf(`"body_sha256":"%s","body_length":%d`, sha(body), len(body))
	for i, c := range slow {
		if _, err := c.Write(body[sent:]); err != nil {
			t.Fatal(err)
		}
		if resp, got := readConnResponse(t, c); resp.StatusCode != 200 || !strings.Contains(got, want) {
			t.Fatalf("upload %d: %d %.300q", i, resp.StatusCode, got)
		}
	}
	if n := h.bodies.used.Load(); n != 0 {
		t.Errorf("%d bytes of bodies still held after every request ended", n)
	}
}

// TestStalledBodyGets408: a client that stops sending mid-body is answered 408 after
// BodyTimeout, and PHP never hears of the request.
func TestStalledBodyGets408(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, BodyTimeout: 300 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	// fasthttp reads the first 8 KiB of a body itself (under the server's ReadTimeout) before the
	// handler runs: stall after that, once early and once past the memory part.
	for _, sent := range []int{16 << 10, 1<<20 + 300<<10} {
		c := startSlowUpload(t, front, "/upload", make([]byte, 2<<20), sent)
		resp, b := readConnResponse(t, c)
		if resp.StatusCode != 408 || !strings.Contains(b, "Request body timeout") {
			t.Fatalf("sent %d: %d %q", sent, resp.StatusCode, b)
		}
	}
	if d := h.upstreams[0].(*fcgiUpstream).dials.Load(); d != 0 {
		t.Errorf("%d connections to php-fpm for requests whose bodies never arrived", d)
	}
	if resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil)); resp.StatusCode != 200 {
		t.Fatalf("after: %d %q", resp.StatusCode, b)
	}
}

// TestHTTPUpstreamBuffersRequestBody: an HTTP upstream, too, hears of a request only once its
// body is complete (unless StreamRequestBodies, see TestHTTPUpstreamStreamsRequestBody).
func TestHTTPUpstreamBuffersRequestBody(t *testing.T) {
	var called atomic.Bool
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called.Store(true)
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	}))
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	body := randomBytes(t, 3<<20)
	const sent = 100 << 10
	c := startSlowUpload(t, front, "/upload", body, sent)
	waitBuffered(t, h, sent)
	if called.Load() {
		t.Fatal("the upstream was called before the body was complete")
	}
	assertNoAnswerYet(t, c, "upload")
	if _, err := c.Write(body[sent:]); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if resp, got := readConnResponse(t, c); resp.StatusCode != 200 || got != fmt.Sprintf("%d %s", len(body), hex.EncodeToString(sum[:])) {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
}

// TestBodyBufferLimit: while one stalled upload holds most of BodyBufferLimit, another body
// that would pass it gets 503 instead of more memory or disk; once the first completes, the
// second goes through. No temporary file outlives its request.
func TestBodyBufferLimit(t *testing.T) {
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "stored %d", n)
	}))
	h, err := New(Config{Upstreams: []string{up}, MaxBody: 1 << 20, BodyBufferLimit: 1 << 20}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	first := make([]byte, 1<<20)
	const sent = 700 << 10
	c := startSlowUpload(t, front, "/upload", first, sent)
	waitBuffered(t, h, sent)

	second := bytes.Repeat([]byte("s"), 500<<10)
	if resp, b := do(t, mustReq(t, "POST", front+"/upload", bytes.NewReader(second))); resp.StatusCode != 503 {
		t.Fatalf("over the buffer limit: %d %q", resp.StatusCode, b)
	}
	if _, err := c.Write(first[sent:]); err != nil {
		t.Fatal(err)
	}
	if resp, b := readConnResponse(t, c); resp.StatusCode != 200 || b != fmt.Sprintf("stored %d", len(first)) {
		t.Fatalf("first: %d %q", resp.StatusCode, b)
	}
	if resp, b := do(t, mustReq(t, "POST", front+"/upload", bytes.NewReader(second))); resp.StatusCode != 200 || string(b) != fmt.Sprintf("stored %d", len(second)) {
		t.Fatalf("second, after: %d %q", resp.StatusCode, b)
	}
	if n := h.bodies.used.Load(); n != 0 {
		t.Errorf("%d bytes of bodies still held", n)
	}
	if n := h.bodies.mem.Load(); n != 0 {
		t.Errorf("%d bytes of body memory still held", n)
	}
	if left, _ := os.ReadDir(os.TempDir()); len(left) > 0 {
		for _, e := range left {
			if strings.HasPrefix(e.Name(), "frontdoor-body-") {
				t.Errorf("temporary file left behind: %s", e.Name())
			}
		}
	}
}
