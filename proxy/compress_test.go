package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brotli "github.com/molecule-man/go-brrr"
	"github.com/rs/zerolog"
)

func TestParseAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string // codings best first, space-separated
	}{
		{"", ""},
		{"gzip", "gzip"},
		{"GZIP", "gzip"},
		{"x-gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br zstd gzip"}, // equal q: br, zstd, gzip
		{"gzip;q=1, br;q=0.5", "gzip br"},           // q honoured
		{"br;q=0.2, zstd;q=0.9, gzip;q=0.5", "zstd gzip br"},
		{"*", "br zstd gzip"},
		{"br;q=0, *", "zstd gzip"}, // a named coding beats *
		{"*;q=0", ""},
		{"gzip, *;q=0", "gzip"},
		{"identity;q=0", ""}, // nothing we make: identity after all
		{"br;q=0", ""},
		{"br;q=0.000", ""},
		{"br;q=0.001", "br"},
		{"br ; q = 0.8 , gzip", "gzip br"},
		{"br;q=2, gzip", "gzip"}, // malformed q: element skipped
		{"br;q=1.5, gzip", "gzip"},
		{"br;q=0.1234, gzip", "gzip"},
		{"br;q=abc, gzip;q=0.1", "gzip"},
		{"br;level=5;q=0.5, gzip;q=0.4", "br gzip"},
		{"deflate, compress", ""},
		{",,, ;q=1, gzip", "gzip"},
		{"gzip;q=0, gzip;q=0.5", "gzip"}, // repeated: the larger q
	} {
		a := parseAcceptEncoding([]byte(tc.header))
		var got []string
		for _, e := range a.list[:a.n] {
			got = append(got, e.token())
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("Accept-Encoding %q: got %q, want %q", tc.header, g, tc.want)
		}
	}
}

func FuzzParseAcceptEncoding(f *testing.F) {
	for _, s := range []string{"", "gzip", "br;q=0.5, *;q=0.1", "identity;q=0", "zstd;q=1.000", "*;q=0", ";;;,q=,", "br;q=0."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a := parseAcceptEncoding([]byte(h))
		if a.n < 0 || a.n > 3 {
			t.Fatalf("%d codings", a.n)
		}
		seen := map[encoding]bool{}
		for _, e := range a.list[:a.n] {
			if e == encIdentity || seen[e] {
				t.Fatalf("%q: list %v", h, a.list[:a.n])
			}
			seen[e] = true
		}
	})
}

func TestCompressibleType(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=UTF-8": true, "text/css": true, "text/plain": true, "application/json": true,
		"application/vnd.api+json": true, "text/javascript": true, "application/javascript": true,
		"image/svg+xml": true, "application/xml": true, "font/ttf": true, "font/otf": true,
		"TEXT/HTML":         true,
		"text/event-stream": false, "text/event-stream; charset=utf-8": false, "font/woff2": false,
		"font/woff": false, "image/png": false, "image/jpeg": false, "application/octet-stream": false,
		"application/zip": false, "video/mp4": false, "": false,
	} {
		if compressibleType([]byte(ct)) != want {
			t.Errorf("%q: want %v", ct, want)
		}
	}
}

// decode undoes a Content-Encoding.
func decode(t *testing.T, enc string, b []byte) string {
	t.Helper()
	var r io.Reader
	var err error
	switch enc {
	case "":
		return string(b)
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
		}
		r = d
	default:
		t.Fatalf("unexpected Content-Encoding %q", enc)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", enc, err)
	}
	return string(out)
}

// compressionCases are requests to /text and what must come back: the coding, and whether
// Vary: Accept-Encoding is set.
var compressionCases = []struct {
	name, query, ae, rangeHdr, method string
	wantEnc                           string
	wantVary                          bool
}{
	{name: "no Accept-Encoding", wantVary: true},
	{name: "gzip", ae: "gzip", wantEnc: "gzip", wantVary: true},
	{name: "br preferred", ae: "gzip, deflate, br, zstd", wantEnc: "br", wantVary: true},
	{name: "q-values", ae: "br;q=0.5, gzip", wantEnc: "gzip", wantVary: true},
	{name: "zstd", ae: "zstd", wantEnc: "zstd", wantVary: true},
	{name: "star", ae: "br;q=0, *", wantEnc: "zstd", wantVary: true},
	{name: "identity;q=0", ae: "identity;q=0", wantVary: true},
	{name: "json", query: "type=application/json", ae: "gzip", wantEnc: "gzip", wantVary: true},
	{name: "small body", query: "n=10", ae: "gzip", wantVary: true},
	{name: "not compressible", query: "type=image/png", ae: "gzip"},
	{name: "woff2", query: "type=font/woff2", ae: "br"},
	{name: "no-transform", query: "cc=public,%20no-transform", ae: "gzip"},
	{name: "already encoded", query: "gzip=1", ae: "br"},
	{name: "range", ae: "gzip", rangeHdr: "bytes=0-99"},
	{name: "HEAD", ae: "gzip", method: "HEAD"},
}

// TestCompressionNegotiation runs every case against real php-fpm and an HTTP upstream: the
// coding chosen, the body decoding to what PHP sent, Vary, and the ETag suffix.
func TestCompressionNegotiation(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	text := strings.Repeat("hello from frontdoor's php\n", 200)
	httpUp := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		if v := q.Get("type"); v != "" {
			w.Header().Set("Content-Type", v)
		}
		if v := q.Get("cc"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		if v := q.Get("etag"); v != "" {
			w.Header().Set("ETag", `"`+v+`"`)
		}
		body := text
		if q.Get("n") == "10" {
			body = body[:270]
		}
		if q.Get("gzip") != "" {
			w.Header().Set("Content-Encoding", "gzip")
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write([]byte(body))
			zw.Close()
			body = b.String()
		}
		fmt.Fprint(w, body)
	}))
	for _, up := range []struct{ name, url string }{{"php-fpm", fpm.unixURL()}, {"http", httpUp}} {
		t.Run(up.name, func(t *testing.T) {
			h, err := New(Config{Root: root(t), Upstreams: []string{up.url}}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			front := serveFront(t, h)
			for _, tc := range compressionCases {
				t.Run(tc.name, func(t *testing.T) {
					method := tc.method
					if method == "" {
						method = "GET"
					}
					q := "?etag=v1"
					if tc.query != "" {
						q += "&" + tc.query
					}
					req := mustReq(t, method, front+"/text"+q, nil)
					if tc.ae != "" {
						req.Header.Set("Accept-Encoding", tc.ae)
					}
					if tc.rangeHdr != "" {
						req.Header.Set("Range", tc.rangeHdr)
					}
					resp, b := do(t, req)
					got := resp.Header.Get("Content-Encoding")
					if tc.query == "gzip=1" {
						if got != "gzip" || decode(t, "gzip", b) != text {
							t.Fatalf("PHP's own gzip was changed: %q", got)
						}
						return
					}
					if got != tc.wantEnc {
						t.Fatalf("Content-Encoding %q, want %q (%v)", got, tc.wantEnc, resp.Header)
					}
					if vary := strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding"); vary != tc.wantVary {
						t.Errorf("Vary %q, want Accept-Encoding: %v", resp.Header.Get("Vary"), tc.wantVary)
					}
					wantETag := `"v1"`
					if tc.wantEnc != "" {
						wantETag = `"v1-` + tc.wantEnc + `"`
					}
					if e := resp.Header.Get("ETag"); e != wantETag {
						t.Errorf("ETag %s, want %s", e, wantETag)
					}
					if method == "HEAD" {
						return
					}
					body := decode(t, got, b)
					switch {
					case tc.name == "small body":
						if len(body) != 270 {
							t.Errorf("body %d bytes", len(body))
						}
					case tc.rangeHdr != "":
						// PHP ignores Range and sends 200 with all of it; either way, identity.
					case body != text:
						t.Errorf("body after decoding: %d bytes, want %d", len(body), len(text))
					}
				})
			}
		})
	}
}

// TestCompressedStreamStaysIncremental: a PHP page that flushes part of itself and then waits
// reaches the client, compressed, part by part: the first part decodes before PHP goes on. An
// SSE stream is never compressed and stays event by event.
func TestCompressedStreamStaysIncremental(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, ReadTimeout: 30 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	for _, enc := range []string{"gzip", "br", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			gate := filepath.Join(t.TempDir(), "go")
			req := mustReq(t, "GET", front+"/stream-html?file="+gate, nil)
			req.Header.Set("Accept-Encoding", enc)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding %q", got)
			}
			var r io.Reader
			switch enc {
			case "gzip":
				r, err = gzip.NewReader(resp.Body)
			case "br":
				r = brotli.NewReader(resp.Body)
			case "zstd":
				var d *zstd.Decoder
				d, err = zstd.NewReader(resp.Body)
				r = d
			}
			if err != nil {
				t.Fatal(err)
			}
			first := strings.Repeat("<p>first part</p>\n", 100)
			got := make([]byte, len(first))
			if err := within(10*time.Second, func() error { _, err := io.ReadFull(r, got); return err }); err != nil || string(got) != first {
				t.Fatalf("first part before PHP went on: %v %.80q", err, got)
			}
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(r)
			if err != nil || string(rest) != strings.Repeat("<p>second part</p>\n", 100) {
				t.Fatalf("rest: %v %.80q", err, rest)
			}
		})
	}
	t.Run("sse", func(t *testing.T) {
		gate := filepath.Join(t.TempDir(), "go")
		req := mustReq(t, "GET", front+"/stream?file="+gate, nil)
		req.Header.Set("Accept-Encoding", "gzip, br, zstd")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := resp.Header.Get("Content-Encoding"); got != "" {
			t.Fatalf("SSE compressed: %q", got)
		}
		br := bufio.NewReader(resp.Body)
		var line string
		err = within(10*time.Second, func() (err error) { line, err = br.ReadString('\n'); return err })
		if err != nil || line != "data: first\n" {
			t.Fatalf("first event before the gate: %v %q", err, line)
		}
		os.WriteFile(gate, nil, 0o644)
		rest, _ := io.ReadAll(br)
		if !strings.Contains(string(rest), "data: last") {
			t.Fatalf("rest %q", rest)
		}
	})
}

// TestStaticCompression: a compressible file is compressed once and then served from the cache
// (keyed by path, size, mtime and coding, so an edit is served fresh); the ETag carries the
// coding and revalidates; a precompressed sibling wins; a Range gets the identity bytes; a
// file that is already compressed (woff2) is not.
func TestStaticCompression(t *testing.T) {
	dir := t.TempDir()
	js := strings.Repeat("export const a = 'frontdoor';\n", 400)
	for name, body := range map[string]string{
		"app.js":     js,
		"pre.css":    strings.Repeat("body{color:red}\n", 200),
		"pre.css.gz": "not really gzip, but the sibling",
		"font.woff2": strings.Repeat("w", 4000),
		"tiny.txt":   "small",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up, _ := startUpstream(t, nil)
	h, err := New(Config{Root: dir, Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)

	resp, body := get(t, front+"/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if resp.Header.Get("Content-Encoding") != "br" || decode(t, "br", []byte(body)) != js || len(body) >= len(js) {
		t.Fatalf("app.js: %v, %d bytes", resp.Header, len(body))
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasSuffix(etag, `-br"`) || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("ETag %s Vary %q", etag, resp.Header.Get("Vary"))
	}
	if len(h.compress.cache.m) != 1 {
		t.Fatalf("%d cached", len(h.compress.cache.m))
	}
	if r, _ := get(t, front+"/app.js", map[string]string{"Accept-Encoding": "br", "If-None-Match": etag}); r.StatusCode != 304 {
		t.Fatalf("If-None-Match with the br ETag: %d", r.StatusCode)
	}
	if r, _ := get(t, front+"/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": etag}); r.StatusCode != 200 {
		t.Fatalf("the br ETag matched a gzip response: %d", r.StatusCode)
	}
	resp, body = get(t, front+"/app.js", nil)
	if resp.Header.Get("Content-Encoding") != "" || body != js || strings.Contains(resp.Header.Get("ETag"), "-") && strings.HasSuffix(resp.Header.Get("ETag"), `-br"`) {
		t.Fatalf("identity: %v", resp.Header)
	}
	// Served from the cache: the cached entry is what goes out.
	for k := range h.compress.cache.m {
		h.compress.cache.m[k] = fasthttpBrotli(t, "from the cache")
	}
	if _, body = get(t, front+"/app.js", map[string]string{"Accept-Encoding": "br"}); decode(t, "br", []byte(body)) != "from the cache" {
		t.Fatalf("not served from the cache: %.60q", body)
	}
	// An edit (new size and mtime) is a new key.
	js2 := js + "// edited\n"
	os.WriteFile(filepath.Join(dir, "app.js"), []byte(js2), 0o644)
	time.Sleep(fileRecheck + 100*time.Millisecond)
	if _, body = get(t, front+"/app.js", map[string]string{"Accept-Encoding": "br"}); decode(t, "br", []byte(body)) != js2 {
		t.Fatalf("edited file: %.60q", body)
	}

	resp, body = get(t, front+"/pre.css", map[string]string{"Accept-Encoding": "br, gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" || body != "not really gzip, but the sibling" || !strings.HasSuffix(resp.Header.Get("ETag"), `-gzip"`) {
		t.Fatalf("precompressed sibling did not win: %v %q", resp.Header, body)
	}
	resp, body = get(t, front+"/app.js", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-5"})
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || body != js2[:6] {
		t.Fatalf("range: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	for _, f := range []string{"/font.woff2", "/tiny.txt"} {
		if resp, _ = get(t, front+f, map[string]string{"Accept-Encoding": "gzip"}); resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("%s compressed", f)
		}
	}
}

// within runs f, failing when it has not returned in d (PHP only goes on once the test
// creates its gate file, so a buffered response would not arrive in time).
func within(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("nothing within %v: the response was held back", d)
	}
}

func fasthttpBrotli(t *testing.T, s string) []byte {
	var b bytes.Buffer
	w, err := brotli.NewWriter(&b, 5)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestCompressCacheBounded(t *testing.T) {
	var c compressCache
	big := make([]byte, compressCacheBytes/8)
	for i := range 100 {
		c.put(compressKey{path: fmt.Sprint(i), enc: encGzip}, big)
		if c.bytes > compressCacheBytes {
			t.Fatalf("%d bytes cached", c.bytes)
		}
	}
	c.put(compressKey{path: "x"}, make([]byte, compressCacheBytes))
	if _, ok := c.get(compressKey{path: "x"}); ok {
		t.Fatal("an entry larger than a quarter of the cache was kept")
	}
}

// TestCompressedHTTPUpstreamStream: an HTTP upstream's flushed piece reaches the client
// compressed before the upstream goes on; every stream's encoder slot is given back, and when
// all slots are taken a stream goes out uncompressed, still streaming.
func TestCompressedHTTPUpstreamStream(t *testing.T) {
	release := make(chan struct{}, 4)
	first := strings.Repeat("<p>first part</p>\n", 100)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "<p>the end</p>")
	}))
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	read := func(wantEnc string) {
		t.Helper()
		req := mustReq(t, "GET", front+"/stream", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := resp.Header.Get("Content-Encoding"); got != wantEnc {
			t.Fatalf("Content-Encoding %q, want %q", got, wantEnc)
		}
		var r io.Reader = resp.Body
		if wantEnc == "gzip" {
			if err := within(10*time.Second, func() (err error) { r, err = gzip.NewReader(resp.Body); return err }); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, len(first))
		if err := within(10*time.Second, func() error { _, err := io.ReadFull(r, got); return err }); err != nil || string(got) != first {
			t.Fatalf("first part before the upstream went on: %v", err)
		}
		release <- struct{}{}
		if rest, err := io.ReadAll(r); err != nil || string(rest) != "<p>the end</p>" {
			t.Fatalf("rest %q %v", rest, err)
		}
	}
	read("gzip")
	deadline := time.Now().Add(10 * time.Second)
	for h.compress.streams.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d encoder slots still taken after the stream ended", h.compress.streams.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.compress.streams.Store(maxCompressStreams)
	read("")
	if n := h.compress.streams.Load(); n != maxCompressStreams {
		t.Fatalf("slots %d after an uncompressed stream, want %d", n, maxCompressStreams)
	}
}

// TestCompressedETagRevalidates: the client revalidates with the suffixed tag it was given;
// PHP sees its own tag, answers 304 (as Laravel's isNotModified does), and the 304 carries the
// client's tag again. Without the suffix stripped PHP would never match and always send 200.
func TestCompressedETagRevalidates(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	req := mustReq(t, "GET", front+"/text?etag=v7", nil)
	req.Header.Set("Accept-Encoding", "br")
	resp, _ := do(t, req)
	if resp.Header.Get("ETag") != `"v7-br"` {
		t.Fatalf("ETag %s", resp.Header.Get("ETag"))
	}
	req = mustReq(t, "GET", front+"/text?etag=v7", nil)
	req.Header.Set("Accept-Encoding", "br")
	req.Header.Set("If-None-Match", `"other", "v7-br"`)
	resp, b := do(t, req)
	if resp.StatusCode != 304 || len(b) != 0 || resp.Header.Get("ETag") != `"v7-br"` || resp.Header.Get("Content-Encoding") != "" ||
		!strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("revalidation: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	// An identity client's own tag passes untouched.
	req = mustReq(t, "GET", front+"/text?etag=v7", nil)
	req.Header.Set("If-None-Match", `"v7"`)
	if resp, _ = do(t, req); resp.StatusCode != 304 || resp.Header.Get("ETag") != `"v7"` {
		t.Fatalf("identity revalidation: %d %v", resp.StatusCode, resp.Header)
	}
}
