package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// phpSaw is what the test app's front controller echoes.
type phpSaw struct {
	Server     map[string]string `json:"server"`
	Headers    map[string]string `json:"headers"`
	Cookies    map[string]string `json:"cookies"`
	Get        map[string]any    `json:"get"`
	Post       map[string]any    `json:"post"`
	BodySHA256 string            `json:"body_sha256"`
	BodyLength int               `json:"body_length"`
}

// client is a plain HTTP/1.1 client that shows responses as they are (no redirects followed,
// no transparent gzip).
var client = &http.Client{
	Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       60 * time.Second,
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

func mustReq(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func decodeSaw(t *testing.T, resp *http.Response, b []byte) phpSaw {
	t.Helper()
	var s phpSaw
	if resp.StatusCode != 200 || json.Unmarshal(b, &s) != nil {
		t.Fatalf("want the front controller's JSON, got %d %v %.300q", resp.StatusCode, resp.Header, b)
	}
	return s
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFastCGIWithPHPFPM runs the Laravel-shaped test app under a real php-fpm, over its unix
// socket and over TCP, through a real fasthttp.Server and a real HTTP client.
func TestFastCGIWithPHPFPM(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	pub := root(t)
	for _, tr := range []struct{ name, upstream string }{{"unix", fpm.unixURL()}, {"tcp", fpm.tcpURL()}} {
		t.Run(tr.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			h, err := New(Config{Root: pub, Upstreams: []string{tr.upstream}, ReadTimeout: 30 * time.Second}, zerolog.New(logs))
			if err != nil {
				t.Fatal(err)
			}
			front := serveFront(t, h)
			frontURL, _ := url.Parse(front)
			_, frontPort, _ := net.SplitHostPort(frontURL.Host)

			t.Run("params", func(t *testing.T) {
				req := mustReq(t, "GET", front+"/orders/7?page=2&sort=-id", nil)
				req.Host = "shop.test"
				req.Header.Set("X-Custom", "a")
				req.Header.Add("Accept", "text/html")
				req.Header.Add("Accept", "application/json")
				req.Header.Set("Cookie", "laravel_session=abc; XSRF-TOKEN=tok")
				req.Header.Set("Proxy", "http://evil.example:3128")  // httpoxy
				req.Header["X_Forwarded_For"] = []string{"10.9.9.9"} // underscore: dropped
				req.Header.Set("Connection", "X-Hop")
				req.Header.Set("X-Hop", "drop me")
				req.Header.Set("X-Request-Id", "req-123")
				resp, b := do(t, req)
				s := decodeSaw(t, resp, b)
				want := map[string]string{
					"SCRIPT_FILENAME":   filepath.Join(pub, "index.php"),
					"SCRIPT_NAME":       "/index.php",
					"PHP_SELF":          "/index.php",
					"REQUEST_URI":       "/orders/7?page=2&sort=-id",
					"QUERY_STRING":      "page=2&sort=-id",
					"DOCUMENT_ROOT":     pub,
					"DOCUMENT_URI":      "/index.php",
					"REQUEST_METHOD":    "GET",
					"REQUEST_SCHEME":    "http",
					"SERVER_PROTOCOL":   "HTTP/1.1",
					"GATEWAY_INTERFACE": "CGI/1.1",
					"SERVER_SOFTWARE":   "frontdoor",
					"REMOTE_ADDR":       "127.0.0.1",
					"SERVER_ADDR":       "127.0.0.1",
					"SERVER_PORT":       frontPort,
					"SERVER_NAME":       "shop.test",
					"REDIRECT_STATUS":   "200",
					"HTTP_HOST":         "shop.test",
					"HTTP_X_CUSTOM":     "a",
					"HTTP_ACCEPT":       "text/html, application/json",
					"HTTP_COOKIE":       "laravel_session=abc; XSRF-TOKEN=tok",
					"HTTP_X_REQUEST_ID": "req-123",
				}
				for k, v := range want {
					if s.Server[k] != v {
						t.Errorf("%s = %q, want %q", k, s.Server[k], v)
					}
				}
				if s.Server["REMOTE_PORT"] == "" || s.Server["REMOTE_PORT"] == "0" {
					t.Errorf("REMOTE_PORT = %q", s.Server["REMOTE_PORT"])
				}
				for _, k := range []string{"HTTP_PROXY", "HTTPS", "HTTP_X_HOP", "HTTP_CONNECTION", "HTTP_X_FORWARDED_FOR", "PATH_INFO"} {
					if v, ok := s.Server[k]; ok {
						t.Errorf("%s should not reach PHP, got %q", k, v)
					}
				}
				if s.Cookies["laravel_session"] != "abc" || s.Cookies["XSRF-TOKEN"] != "tok" {
					t.Errorf("cookies: %v", s.Cookies)
				}
				if s.Get["page"] != "2" || s.Get["sort"] != "-id" {
					t.Errorf("$_GET: %v", s.Get)
				}
				if resp.Header.Get("X-Powered-By") != "" || resp.Header.Get("X-Request-Id") != "req-123" {
					t.Errorf("response headers: %v", resp.Header)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			})

			t.Run("keeps_connections", func(t *testing.T) {
				u := h.upstreams[0].(*fcgiUpstream)
				before := u.dials.Load()
				for range 20 {
					if resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil)); resp.StatusCode != 200 {
						t.Fatalf("%d %q", resp.StatusCode, b)
					}
				}
				if d := u.dials.Load() - before; d > 1 {
					t.Errorf("%d connections dialed for 20 sequential requests", d)
				}
			})

			t.Run("path_info", func(t *testing.T) {
				resp, b := do(t, mustReq(t, "GET", front+"/index.php/foo/bar?x=1", nil))
				s := decodeSaw(t, resp, b)
				if s.Server["PATH_INFO"] != "/foo/bar" || s.Server["SCRIPT_NAME"] != "/index.php" ||
					s.Server["SCRIPT_FILENAME"] != filepath.Join(pub, "index.php") || s.Server["REQUEST_URI"] != "/index.php/foo/bar?x=1" {
					t.Errorf("PATH_INFO %q SCRIPT_NAME %q SCRIPT_FILENAME %q REQUEST_URI %q", s.Server["PATH_INFO"],
						s.Server["SCRIPT_NAME"], s.Server["SCRIPT_FILENAME"], s.Server["REQUEST_URI"])
				}
			})

			t.Run("form_post", func(t *testing.T) {
				req := mustReq(t, "POST", front+"/login", strings.NewReader("email=a%40b.c&remember=1"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, b := do(t, req)
				s := decodeSaw(t, resp, b)
				if s.Post["email"] != "a@b.c" || s.Post["remember"] != "1" || s.Server["CONTENT_LENGTH"] != "24" ||
					s.Server["CONTENT_TYPE"] != "application/x-www-form-urlencoded" || s.Server["REQUEST_METHOD"] != "POST" {
					t.Errorf("post %v CONTENT_LENGTH %q CONTENT_TYPE %q", s.Post, s.Server["CONTENT_LENGTH"], s.Server["CONTENT_TYPE"])
				}
			})

			t.Run("upload_raw_8MiB", func(t *testing.T) {
				body := randomBytes(t, 8<<20+123)
				req := mustReq(t, "PUT", front+"/upload", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, b := do(t, req)
				var got map[string]any
				if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
					t.Fatalf("%d %.300q", resp.StatusCode, b)
				}
				if got["body_sha256"] != sha(body) || got["body_length"] != float64(len(body)) {
					t.Errorf("PHP got %v, sent %d bytes %s", got, len(body), sha(body))
				}
			})

			t.Run("upload_chunked_3MiB", func(t *testing.T) {
				body := randomBytes(t, 3<<20+7)
				// io.MultiReader hides the length: net/http sends Transfer-Encoding: chunked.
				req := mustReq(t, "POST", front+"/upload", io.MultiReader(bytes.NewReader(body)))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, b := do(t, req)
				var got map[string]any
				if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
					t.Fatalf("%d %.300q", resp.StatusCode, b)
				}
				if got["body_sha256"] != sha(body) || got["content_length"] != fmt.Sprint(len(body)) {
					t.Errorf("PHP got %v, sent %d bytes %s", got, len(body), sha(body))
				}
			})

			t.Run("upload_multipart_6MiB", func(t *testing.T) {
				file := randomBytes(t, 6<<20)
				var buf bytes.Buffer
				mw := multipart.NewWriter(&buf)
				_ = mw.WriteField("title", "holiday")
				fw, _ := mw.CreateFormFile("photo", "photo.jpg")
				_, _ = fw.Write(file)
				_ = mw.Close()
				req := mustReq(t, "POST", front+"/upload", &buf)
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, b := do(t, req)
				var got struct {
					SHA    string            `json:"file_sha256"`
					Size   int               `json:"file_size"`
					Err    int               `json:"file_error"`
					Fields map[string]string `json:"fields"`
				}
				if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
					t.Fatalf("%d %.300q", resp.StatusCode, b)
				}
				if got.SHA != sha(file) || got.Size != len(file) || got.Err != 0 || got.Fields["title"] != "holiday" {
					t.Errorf("PHP got %+v", got)
				}
			})

			for _, withLength := range []bool{false, true} {
				t.Run(fmt.Sprintf("download_8MiB_length_%v", withLength), func(t *testing.T) {
					u := front + "/download?blocks=128"
					if withLength {
						u += "&length=1"
					}
					resp, b := do(t, mustReq(t, "GET", u, nil))
					if resp.StatusCode != 200 || len(b) != 128<<16 {
						t.Fatalf("%d, %d bytes", resp.StatusCode, len(b))
					}
					for i := range 128 {
						if b[i<<16] != byte(i) || b[i<<16+65535] != byte(i) {
							t.Fatalf("block %d corrupt", i)
						}
					}
					if withLength != (resp.ContentLength == 128<<16) {
						t.Errorf("Content-Length %d, TE %v", resp.ContentLength, resp.TransferEncoding)
					}
				})
			}

			t.Run("streamed_response", func(t *testing.T) {
				dir, err := os.MkdirTemp("", "stream")
				if err != nil {
					t.Fatal(err)
				}
				defer os.RemoveAll(dir)
				gate := filepath.Join(dir, "go")
				resp, err := client.Get(front + "/stream?file=" + url.QueryEscape(gate))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
					t.Fatalf("%d %v", resp.StatusCode, resp.Header)
				}
				br := bufio.NewReader(resp.Body)
				// PHP is now waiting for the gate file: the first event must already be here.
				first, err := br.ReadString('\n')
				if err != nil || first != "data: first\n" {
					t.Fatalf("first event %q %v", first, err)
				}
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				rest, err := io.ReadAll(br)
				if err != nil || string(rest) != "\ndata: last\n\n" {
					t.Fatalf("rest %q %v", rest, err)
				}
			})

			t.Run("two_cookies", func(t *testing.T) {
				resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil))
				c := resp.Header.Values("Set-Cookie")
				if resp.StatusCode != 200 || string(b) != "cookies set" || len(c) != 2 ||
					!strings.HasPrefix(c[0], "first=one") || !strings.Contains(c[0], "HttpOnly") || !strings.HasPrefix(c[1], "second=two") {
					t.Errorf("%d %q Set-Cookie %q", resp.StatusCode, b, c)
				}
			})

			t.Run("status_codes", func(t *testing.T) {
				resp, b := do(t, mustReq(t, "GET", front+"/status", nil))
				if resp.StatusCode != 422 || !strings.Contains(string(b), "invalid") {
					t.Errorf("custom status: %d %q", resp.StatusCode, b)
				}
				resp, _ = do(t, mustReq(t, "GET", front+"/redirect", nil))
				if resp.StatusCode != 302 || resp.Header.Get("Location") != "/dashboard" {
					t.Errorf("redirect: %d %v", resp.StatusCode, resp.Header)
				}
				resp, b = do(t, mustReq(t, "GET", front+"/no-content", nil))
				if resp.StatusCode != 204 || len(b) != 0 {
					t.Errorf("204: %d %q", resp.StatusCode, b)
				}
			})

			t.Run("big_headers", func(t *testing.T) {
				for _, n := range []int{1000, 1017, 2000, 60000} {
					resp, b := do(t, mustReq(t, "GET", fmt.Sprintf("%s/big-header?n=%d", front, n), nil))
					if resp.StatusCode != 200 || len(resp.Header.Get("X-Big")) != n || string(b) != "big header" {
						t.Errorf("n=%d: %d len %d %q", n, resp.StatusCode, len(resp.Header.Get("X-Big")), b)
					}
				}
			})

			t.Run("stderr_logged", func(t *testing.T) {
				req := mustReq(t, "GET", front+"/stderr", nil)
				req.Header.Set("X-Request-Id", "stderr-req")
				resp, b := do(t, req)
				if resp.StatusCode != 200 || string(b) != "logged" {
					t.Fatalf("%d %q", resp.StatusCode, b)
				}
				if l := logs.String(); !strings.Contains(l, "something went wrong in PHP") || !strings.Contains(l, `"request_id":"stderr-req"`) {
					t.Errorf("stderr not logged with the request id: %s", l)
				}
			})

			t.Run("never_served_never_run", func(t *testing.T) {
				for _, p := range []string{"/.env", "/../.env", "/%2e%2e/.env", "/..%2f.env", "/.git/HEAD", "/uploads/../../.env"} {
					resp, b := do(t, mustReq(t, "GET", front+p, nil))
					if strings.Contains(string(b), "never-served-secret") || strings.Contains(string(b), "hunter2") {
						t.Errorf("%s leaked .env: %d", p, resp.StatusCode)
					}
				}
				// A PHP file under public/ other than the front controller never runs, and no
				// PHP source is served: the front controller gets the request instead.
				for _, p := range []string{"/uploads/evil.php", "/uploads/evil.php/x", "/index.php", "/INDEX.PHP"} {
					resp, b := do(t, mustReq(t, "GET", front+p, nil))
					if strings.Contains(string(b), "EVIL RAN") || strings.Contains(string(b), "<?php") {
						t.Fatalf("%s: %q", p, b)
					}
					s := decodeSaw(t, resp, b)
					if s.Server["SCRIPT_FILENAME"] != filepath.Join(pub, "index.php") {
						t.Errorf("%s ran %q", p, s.Server["SCRIPT_FILENAME"])
					}
				}
				resp, b := do(t, mustReq(t, "GET", front+"/app.css", nil))
				if resp.StatusCode != 200 || string(b) != "body{}\n" {
					t.Errorf("static file: %d %q", resp.StatusCode, b)
				}
			})

			t.Run("head", func(t *testing.T) {
				resp, b := do(t, mustReq(t, "HEAD", front+"/download?blocks=64", nil))
				if resp.StatusCode != 200 || len(b) != 0 {
					t.Errorf("HEAD: %d %d bytes", resp.StatusCode, len(b))
				}
				// The connection php-fpm was still writing to is dropped, not reused.
				resp, b = do(t, mustReq(t, "GET", front+"/cookies", nil))
				if resp.StatusCode != 200 || string(b) != "cookies set" {
					t.Errorf("after HEAD: %d %q", resp.StatusCode, b)
				}
			})

			t.Run("concurrent_beyond_workers", func(t *testing.T) {
				// 16 clients against 4 workers with kept connections: none may starve.
				slowFromSixteenClients(t, front)
			})
		})
	}
}

// TestFastCGIFailures: a slow script is a 504, a dead php-fpm a 502, each with the error page.
func TestFastCGIFailures(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, ReadTimeout: 500 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)

	resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d %q", resp.StatusCode, b)
	}
	req := mustReq(t, "GET", front+"/slow?ms=3000", nil)
	req.Header.Set("Accept", "application/json")
	resp, b = do(t, req)
	if resp.StatusCode != 504 || !strings.Contains(string(b), `"request_id"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("slow: %d %q", resp.StatusCode, b)
	}

	fpm.stop()
	for _, p := range []string{"/", "/cookies"} { // a pooled connection and a fresh dial
		resp, b = do(t, mustReq(t, "GET", front+p, nil))
		if resp.StatusCode != 502 || !strings.Contains(string(b), "Request id") {
			t.Fatalf("dead php-fpm %s: %d %q", p, resp.StatusCode, b)
		}
	}

	// A socket that never existed.
	h2, err := New(Config{Root: root(t), Upstreams: []string{"fastcgi:///nonexistent/php.sock"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, mustReq(t, "GET", serveFront(t, h2)+"/", nil)); resp.StatusCode != 502 {
		t.Fatalf("missing socket: %d", resp.StatusCode)
	}
}

// TestFastCGIChunkedBodyLimit: a chunked body has no length to check up front; it is refused
// with 413 once it passes MaxBody while it is read, and the client reads that 413 even when it
// goes on sending megabytes (the rest is read and discarded, as Nginx's lingering close does,
// instead of a close with unread data that the kernel turns into a reset).
func TestFastCGIChunkedBodyLimit(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.tcpURL()}, MaxBody: 2 << 20}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	for _, over := range []int{100 << 10, 6 << 20} {
		req := mustReq(t, "POST", front+"/upload", io.MultiReader(bytes.NewReader(make([]byte, 2<<20+over))))
		if resp, b := do(t, req); resp.StatusCode != 413 {
			t.Fatalf("%d bytes over: %d %q", over, resp.StatusCode, b)
		}
	}
	req := mustReq(t, "POST", front+"/upload", io.MultiReader(bytes.NewReader(make([]byte, 1<<20+5))))
	if resp, b := do(t, req); resp.StatusCode != 200 || !strings.Contains(string(b), `"body_length":1048581`) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// TestFastCGIMaxConns: with max_conns = pm.max_children, 16 concurrent clients share 4 kept
// connections: every request succeeds and no connection is dialed beyond the 4.
func TestFastCGIMaxConns(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.tcpURL() + "?max_conns=4"}, ReadTimeout: 30 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	slowFromSixteenClients(t, front)
	u := h.upstreams[0].(*fcgiUpstream)
	if d := u.dials.Load(); d > 4 {
		t.Errorf("%d connections dialed for 160 requests, want at most 4", d)
	}
}

// TestFastCGIWorkerRecycling: php-fpm closes a kept connection when its worker exits
// (pm.max_requests; 1 here, so every connection dies after one request). A request that can go
// again is retried on a fresh connection; one with a streamed body cannot, so the pool checks a
// kept connection is still open before using it.
func TestFastCGIWorkerRecycling(t *testing.T) {
	fpm := startPHPFPM(t, 2, "pm.max_requests = 1")
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	u := h.upstreams[0].(*fcgiUpstream)
	body := bytes.Repeat([]byte("z"), 200<<10) // over fcgiInlineStdin: streamed, not replayable
	for i := range 10 {
		if resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil)); resp.StatusCode != 200 {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, b)
		}
		// Wait until php-fpm has closed the kept connection, so the POST meets a closed one.
		deadline := time.Now().Add(10 * time.Second)
		for {
			u.mu.Lock()
			closed := len(u.idle) == 0 || !alive(u.idle[len(u.idle)-1].nc)
			u.mu.Unlock()
			if closed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("php-fpm kept the connection of a recycled worker open")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if resp, b := do(t, mustReq(t, "POST", front+"/upload", bytes.NewReader(body))); resp.StatusCode != 200 || !strings.Contains(string(b), `"body_length":204800`) {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, b)
		}
	}
}

// TestDeploySymlinkSwap: a zero-downtime deploy swaps current -> releases/N. Within a second
// or two, static files come from the new release and PHP runs the new release's front
// controller by its real path (what $realpath_root gives Nginx, and what OPcache keys on).
func TestDeploySymlinkSwap(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	dir, err := filepath.EvalSymlinks(t.TempDir()) // the expected real paths
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root(t), "index.php"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"1", "2"} {
		pub := filepath.Join(dir, "releases", rel, "public")
		if err := os.MkdirAll(pub, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(pub, "index.php"), src, 0o644)
		os.WriteFile(filepath.Join(pub, "version.txt"), []byte("release "+rel), 0o644)
	}
	current := filepath.Join(dir, "current")
	if err := os.Symlink(filepath.Join(dir, "releases", "1"), current); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Root: filepath.Join(current, "public"), Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	check := func(rel string) bool {
		_, b := do(t, mustReq(t, "GET", front+"/version.txt", nil))
		resp, js := do(t, mustReq(t, "GET", front+"/whoami", nil))
		s := decodeSaw(t, resp, js)
		return string(b) == "release "+rel &&
			s.Server["SCRIPT_FILENAME"] == filepath.Join(dir, "releases", rel, "public", "index.php") &&
			s.Server["DOCUMENT_ROOT"] == filepath.Join(current, "public")
	}
	if !check("1") {
		t.Fatal("release 1 not served")
	}
	// The deploy: a new symlink renamed over the old one, atomically.
	tmp := filepath.Join(dir, "current.tmp")
	if err := os.Symlink(filepath.Join(dir, "releases", "2"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, current); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !check("2") {
		if time.Now().After(deadline) {
			t.Fatal("still serving release 1 ten seconds after the swap")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFastCGIClientGoneMidStream: a client that leaves during a streamed response costs the
// connection to php-fpm (the rest of PHP's output is on it) but nothing else: with max_conns=1
// the next request gets a connection again.
func TestFastCGIClientGoneMidStream(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL() + "?max_conns=1"}, ReadTimeout: 30 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	dir, err := os.MkdirTemp("", "gone")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	gate := filepath.Join(dir, "go")

	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /stream?file=%s HTTP/1.1\r\nHost: app.test\r\n\r\n", url.QueryEscape(gate))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "data: first") {
			break
		}
	}
	c.Close() // gone, while PHP still holds the response open
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// PHP's last chunk now meets a closed client (or is written before the reset arrives):
	// either way the connection stops being busy, dropped or back in the pool, never leaked.
	u := h.upstreams[0].(*fcgiUpstream)
	deadline := time.Now().Add(20 * time.Second)
	for {
		u.mu.Lock()
		busy := u.open - len(u.idle)
		u.mu.Unlock()
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still busy after the client left", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil)); resp.StatusCode != 200 {
		t.Fatalf("after the abort: %d %q", resp.StatusCode, b)
	}
}

// getSlow requests url (testdata's slow.php) and returns an error unless it answers 200 "slow done".
func getSlow(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "slow done" {
		return fmt.Errorf("%s: %d %q", url, resp.StatusCode, b)
	}
	return nil
}

// slowFromSixteenClients has 16 clients request /slow ten times each (0–10 ms of PHP work), and
// fails the test for any error or wrong answer: more clients than php-fpm has workers, none may
// starve.
func slowFromSixteenClients(t *testing.T, front string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16*10)
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if err := getSlow(fmt.Sprintf("%s/slow?ms=%d", front, (c+i)%3*5)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
