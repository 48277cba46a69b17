package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/leaktest"
)

// Close ends every goroutine the handler started: the FastCGI pool's idle reaper, the release
// watcher, streamed bodies' STDIN writers. Requests of each kind run first (a page through a
// kept php-fpm connection, a streamed upload, a static file), so the goroutines exist.
func TestHandlerCloseLeavesNoGoroutines(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	leaktest.Check(t, "github.com/frontdoorhq/frontdoor/proxy")
	h, err := New(Config{Root: "testdata/app/public", Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	base := serveFront(t, h)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/hello", ""},
		{"POST", "/hello", strings.Repeat("x", 300<<10)}, // past the inline size: a STDIN writer
		{"GET", "/build/assets/app-abc123.js", ""},
	} {
		req, _ := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s: %d", r.method, r.path, resp.StatusCode)
		}
	}
	client.CloseIdleConnections()
}
