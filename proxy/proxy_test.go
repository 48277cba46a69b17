package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// upstreamSeen is what the test's PHP stand-in (a Go HTTP server) received.
type upstreamSeen struct {
	uri, host, xff, proto, xhost, realIP, conn, reqID string
	body                                              string
	unsafe                                            string
}

func startUpstream(t *testing.T, handler http.HandlerFunc) (string, chan upstreamSeen) {
	t.Helper()
	seen := make(chan upstreamSeen, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- upstreamSeen{r.RequestURI, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Real-IP"), r.Header.Get("X-Custom-Hop"), r.Header.Get("X-Request-Id"), string(b),
			r.Header.Get("Proxy") + underscored(r.Header)}
		if handler != nil {
			handler(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
		w.WriteHeader(201)
		fmt.Fprint(w, "from php")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), seen
}

// underscored lists header names holding an underscore.
func underscored(h http.Header) string {
	var out []string
	for k := range h {
		if strings.Contains(k, "_") {
			out = append(out, k)
		}
	}
	return strings.Join(out, ",")
}

func startFront(t *testing.T, cfg Config) string {
	t.Helper()
	h, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h.ServeHTTP, StreamRequestBody: true}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close(); h.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func root(t *testing.T) string {
	abs, err := filepath.Abs("testdata/app/public")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestStaticFilesWithValidatorsRangeAndPrecompressed(t *testing.T) {
	up, _ := startUpstream(t, nil)
	front := startFront(t, Config{Root: root(t), Upstreams: []string{up}})

	resp, body := get(t, front+"/app.css", nil)
	if resp.StatusCode != 200 || body != "body{}\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("validators missing: %v", resp.Header)
	}
	if resp, _ := get(t, front+"/app.css", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ := get(t, front+"/app.css", map[string]string{"If-Modified-Since": lm}); resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
	if resp, body := get(t, front+"/app.css", map[string]string{"Range": "bytes=0-3"}); resp.StatusCode != 206 || body != "body" || resp.Header.Get("Content-Range") != "bytes 0-3/7" {
		t.Fatalf("range: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp, _ := get(t, front+"/app.css", map[string]string{"Range": "bytes=100-"}); resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	resp, body = get(t, front+"/build/assets/app-abc123.js", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if body != "gzipped-version" || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("precompressed/immutable: %q %v", body, resp.Header)
	}
	if _, body := get(t, front+"/build/assets/app-abc123.js", nil); body != "console.log(\"hashed\")\n" {
		t.Fatalf("identity: %q", body)
	}
}

// Security regressions, each a rule of Nginx's Laravel block.
func TestNeverServed(t *testing.T) {
	up, seen := startUpstream(t, nil)
	front := startFront(t, Config{Root: root(t), Upstreams: []string{up}})
	for _, p := range []string{"/.env", "/.git/HEAD", "/build/.hidden", "/%2egit/HEAD"} {
		resp, body := get(t, front+p, nil)
		if resp.StatusCode != 404 || strings.Contains(body, "APP_KEY") || strings.Contains(body, "refs/heads") {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	// PHP source is never a static file, and only the front controller would run it: the request
	// goes upstream with its original URI (the test upstream answers 201). Traversal forms clean
	// to a dotfile and are refused before any upstream sees them.
	for _, c := range []struct {
		path string
		want int
	}{
		{"/index.php", 201}, {"/uploads/evil.php?x=1", 201},
		{"/../.env", 404}, {"/%2e%2e/.env", 404}, {"/..%2f.env", 404},
	} {
		resp, body := get(t, front+c.path, nil)
		if strings.Contains(body, "never served as source") || strings.Contains(body, "APP_KEY") {
			t.Errorf("%s leaked: %q", c.path, body)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.path, resp.StatusCode, c.want)
		}
		if resp.StatusCode == 201 {
			<-seen
		}
	}
}

func TestSymlinkOutsideRootIsNotServed(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "public")
	for _, err := range []error{
		os.Mkdir(pub, 0o755),
		os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("outside"), 0o644),
		os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(pub, "link.txt")),
		os.WriteFile(filepath.Join(pub, "in.txt"), []byte("inside"), 0o644),
		os.Symlink("in.txt", filepath.Join(pub, "inlink.txt")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(pub)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rel, f, _ := staticFile(r, "/link.txt"); f != nil {
		t.Fatalf("symlink out of root resolved to %s", rel)
	}
	if _, f, _ := staticFile(r, "/a\x00b"); f != nil {
		t.Fatal("NUL accepted")
	}
	if _, f, _ := staticFile(r, "/inlink.txt"); f == nil {
		t.Fatal("a symlink inside the root is a file like any other")
	} else {
		f.Close()
	}
}

func TestForwardingHeadersAndBody(t *testing.T) {
	up, seen := startUpstream(t, nil)
	front := startFront(t, Config{Root: root(t), Upstreams: []string{up}})
	req, _ := http.NewRequest("POST", front+"/orders?page=2", strings.NewReader("name=x"))
	req.Host = "shop.test"
	req.Header.Set("X-Forwarded-For", "10.0.0.9") // spoofed: frontdoor is the edge
	req.Header.Set("X-Forwarded-Proto", "https")  // spoofed: must be replaced
	req.Header.Set("Connection", "X-Custom-Hop")
	req.Header.Set("X-Custom-Hop", "drop me")
	req.Header.Set("X-Request-Id", "abc123")
	req.Header.Set("Proxy", "http://evil:3128")
	req.Header["X_Forwarded_Proto"] = []string{"https"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := <-seen
	if resp.StatusCode != 201 || string(b) != "from php" || len(resp.Cookies()) != 2 {
		t.Fatalf("%d %q cookies %v", resp.StatusCode, b, resp.Cookies())
	}
	if s.uri != "/orders?page=2" || s.host != "shop.test" || s.body != "name=x" || s.xff != "127.0.0.1" ||
		s.proto != "http" || s.xhost != "shop.test" || s.realIP != "127.0.0.1" || s.conn != "" || s.reqID != "abc123" || s.unsafe != "" {
		t.Fatalf("upstream saw %+v", s)
	}
	if resp.Header.Get("X-Request-Id") != "abc123" {
		t.Fatalf("request id not returned: %v", resp.Header)
	}
}

func TestUpstreamFailures(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	dead.Close()
	front := startFront(t, Config{Upstreams: []string{"http://" + addr}})
	resp, body := get(t, front+"/", nil)
	if resp.StatusCode != 502 || !strings.Contains(body, "Request id") {
		t.Fatalf("dead upstream: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, front+"/api/x", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 502 || !strings.Contains(body, `"request_id"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON error page: %d %q", resp.StatusCode, body)
	}

	slow, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	front = startFront(t, Config{Upstreams: []string{slow}, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	if resp, _ := get(t, front+"/slow", nil); resp.StatusCode != 504 {
		t.Fatalf("slow upstream: %d", resp.StatusCode)
	}
}

// A body over MaxBody with a Content-Length gets 413 before PHP sees it, and the client, which
// sends its body without waiting (no Expect: 100-continue, as browsers do), reads that 413 even
// for megabytes: the body is discarded, not left unread for the kernel to answer with a reset.
func TestBodyLimit(t *testing.T) {
	up, _ := startUpstream(t, nil)
	front := startFront(t, Config{Upstreams: []string{up}, MaxBody: 1000})
	for _, n := range []int{5000, 8 << 20} {
		resp, err := http.Post(front+"/upload", "application/octet-stream", strings.NewReader(strings.Repeat("x", n)))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("%d bytes: %d", n, resp.StatusCode)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Upstreams: []string{"fastcgi://127.0.0.1:9000"}}, "root: required"},
		{Config{Root: ".", Upstreams: []string{"fastcgi://127.0.0.1"}}, "needs host:port"},
		{Config{Root: ".", Upstreams: []string{"fastcgi://"}}, `"fastcgi://"`},
		{Config{Root: ".", Upstreams: []string{"fastcgi://127.0.0.1:9000?max_conns=0"}}, "max_conns"},
		{Config{Root: ".", Upstreams: []string{"fastcgi:///run/php.sock?pool=x"}}, "max_conns"},
		{Config{Upstreams: []string{"ftp://x"}}, `"ftp://x"`},
		{Config{Root: "/nonexistent/public"}, "root"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c.cfg, err)
		}
	}
}

func TestValidateAcceptsFastCGI(t *testing.T) {
	for _, u := range []string{"fastcgi://127.0.0.1:9000", "fastcgi:///run/php/php8.2-fpm.sock", "http://127.0.0.1:8000",
		"fastcgi:///run/php/php8.2-fpm.sock?max_conns=5"} {
		c := Config{Root: ".", Upstreams: []string{u}}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func FuzzStaticFile(f *testing.F) {
	for _, s := range []string{"/app.css", "/../.env", "/%2e%2e/x", "/.git/HEAD", "/a/../../b", "/index.php", "//etc/passwd"} {
		f.Add(s)
	}
	r, err := os.OpenRoot("testdata/app/public")
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	f.Fuzz(func(t *testing.T, p string) {
		rel, file, _ := staticFile(r, p)
		if file == nil {
			return
		}
		file.Close()
		if !filepath.IsLocal(rel) || strings.HasSuffix(strings.ToLower(rel), ".php") || strings.HasPrefix(rel, ".") || strings.Contains(rel, "/.") {
			t.Fatalf("%q resolved to %q", p, rel)
		}
	})
}
