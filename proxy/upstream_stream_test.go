package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startGoUpstream serves handler on loopback with net/http, the stand-in for Octane or
// php artisan serve.
func startGoUpstream(t *testing.T, handler http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestHTTPUpstreamStreamsResponse: an SSE event reaches the client while the upstream is still
// holding the response open, and a long stream outlives ReadTimeout as long as it keeps talking.
func TestHTTPUpstreamStreamsResponse(t *testing.T) {
	release := make(chan struct{})
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for i := range 4 { // 4 × 150 ms: longer than ReadTimeout in total, never silent that long
			time.Sleep(150 * time.Millisecond)
			fmt.Fprintf(w, "data: tick %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	h, err := New(Config{Upstreams: []string{up}, ReadTimeout: 400 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	resp, err := client.Get(front + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
		t.Fatalf("first event %q %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

// TestHTTPUpstreamStreamsRequestBody: with StreamRequestBodies, the upstream reads the start of an upload before the client
// has sent the rest, so the body is not buffered on the way; a large body arrives intact.
func TestHTTPUpstreamStreamsRequestBody(t *testing.T) {
	gotFirst := make(chan struct{})
	var firstOnce sync.Once
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if string(first) == "hello" {
			firstOnce.Do(func() { close(gotFirst) })
		}
		h := sha256.New()
		h.Write(first)
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %s", n+5, hex.EncodeToString(h.Sum(nil)))
	}))
	h, err := New(Config{Upstreams: []string{up}, StreamRequestBodies: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)

	pr, pw := io.Pipe()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	go func() {
		pw.Write([]byte("hello"))
		select {
		case <-gotFirst: // the upstream has the first bytes: the rest follows only now
		case <-time.After(30 * time.Second):
			pw.CloseWithError(fmt.Errorf("upstream never saw the first bytes"))
			return
		}
		pw.Write(big)
		pw.Close()
	}()
	req := mustReq(t, "POST", front+"/upload", pr) // unknown length: chunked
	resp, b := do(t, req)
	sum := sha256.Sum256(append([]byte("hello"), big...))
	if want := fmt.Sprintf("%d %s", len(big)+5, hex.EncodeToString(sum[:])); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("%d %q, want %q", resp.StatusCode, b, want)
	}

	// Known length, larger than the server's in-memory limit.
	req = mustReq(t, "PUT", front+"/upload", bytes.NewReader(append([]byte("hello"), big...)))
	if resp, b := do(t, req); resp.StatusCode != 200 || !strings.HasPrefix(string(b), fmt.Sprint(len(big)+5)) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// TestHTTPUpstreamBigDownloadAndChunkedLimit: a multi-MB body streams back whole; a chunked
// upload over MaxBody is refused with 413.
func TestHTTPUpstreamBigDownloadAndChunkedLimit(t *testing.T) {
	block := bytes.Repeat([]byte("x"), 1<<16)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			_, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return
			}
			fmt.Fprint(w, "stored")
			return
		}
		for range 160 { // 10 MiB
			w.Write(block)
		}
	}))
	h, err := New(Config{Upstreams: []string{up}, MaxBody: 1 << 20}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	resp, b := do(t, mustReq(t, "GET", front+"/file", nil))
	if resp.StatusCode != 200 || len(b) != 160<<16 || bytes.Count(b, []byte("x")) != len(b) {
		t.Fatalf("%d, %d bytes", resp.StatusCode, len(b))
	}
	for _, over := range []int{100 << 10, 6 << 20} { // past fasthttp's 256 KiB drain limit too
		req := mustReq(t, "POST", front+"/upload", io.MultiReader(bytes.NewReader(make([]byte, 1<<20+over))))
		if resp, b := do(t, req); resp.StatusCode != 413 {
			t.Fatalf("%d bytes over the limit: %d %q", over, resp.StatusCode, b)
		}
	}
	req := mustReq(t, "POST", front+"/upload", io.MultiReader(bytes.NewReader(make([]byte, 100<<10))))
	if resp, b := do(t, req); resp.StatusCode != 200 || string(b) != "stored" {
		t.Fatalf("under the limit: %d %q", resp.StatusCode, b)
	}
}
