package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/frontdoorhq/frontdoor/internal/phpfpmtest"
	"github.com/frontdoorhq/frontdoor/pusher"
)

// HTTP/2 on the TLS listener, end to end: a frontdoor with a self-signed certificate in front of
// a real php-fpm and a public/ directory, spoken to by Go's HTTP/2 client (and by hand-written
// frames where a well-behaved client cannot be made to misbehave).

const h2Domain = "app.example.com"

// h2Site writes a Laravel-shaped public/: a front controller that reports what PHP saw, an SSE
// script that waits for the test between two events, and a built asset.
func h2Site(t *testing.T) (root, marker string) {
	t.Helper()
	root = t.TempDir()
	marker = filepath.Join(t.TempDir(), "go")
	files := map[string]string{
		// Laravel's shape: every PHP request goes through the front controller, which routes.
		"index.php": `<?php
if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/events') {
    header('Content-Type: text/event-stream');
    header('Cache-Control: no-cache');
    echo "data: first\n\n"; flush();
    for ($i = 0; $i < 600 && !file_exists(` + fmt.Sprintf("%q", marker) + `); $i++) { usleep(50000); }
    echo "data: second\n\n"; flush();
    exit;
}
if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/cookies') {
    setcookie('a', '1');
    setcookie('b', '2');
    echo 'no content type set';
    exit;
}
header('Content-Type: text/plain');
echo $_SERVER['SERVER_PROTOCOL'], ' https=', $_SERVER['HTTPS'] ?? '', ' remote=', $_SERVER['REMOTE_ADDR'],
  ' host=', $_SERVER['HTTP_HOST'], ' uri=', $_SERVER['REQUEST_URI'], ' body=', file_get_contents('php://input');
`,
		"build/assets/app-3f2a1b.css": strings.Repeat("body{color:#123}\n", 100),
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, marker
}

// logBuffer collects the server's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startH2Server runs a TLS frontdoor in-process and returns its https address. stop ends it the
// way SIGTERM does and waits (it also runs when the test ends).
func startH2Server(t *testing.T, logs io.Writer, extra ...string) (srv *server, addr string, stop func()) {
	t.Helper()
	addr = freeAddr(t)
	args := append([]string{"--env-file", "", "--admin", "off", "--tls", "self-signed", "--domain", h2Domain,
		"--https-addr", addr, "--http-addr", freeAddr(t), "--app-id", "1", "--app-key", "key1", "--app-secret", "secret1"}, extra...)
	s, err := load(t, args, env())
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	srv, err = newServer(s, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); !srv.ready.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
	}
	return srv, addr, stop
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: h2Domain} // the server's own self-signed certificate
}

// h2Client speaks HTTP/2 only: no fallback to HTTP/1.1 when the server does not offer h2.
func h2Client() *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: clientTLS()}, Timeout: 30 * time.Second}
}

// h1Client speaks HTTP/1.1 only: an empty TLSNextProto map turns HTTP/2 off in net/http.
func h1Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, Timeout: 30 * time.Second}
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = h2Domain
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, u, err)
	}
	return resp, string(b)
}

// TestHTTP2ServesTheSameHandlerChain: over HTTP/2, PHP pages, static files (ETag, 304, Range), the
// signed Pusher API, the 413 and 421 refusals, Server-Sent Events as they are written, and the
// access log all behave as over HTTP/1.1, which keeps working on the same port, as does wss://.
func TestHTTP2ServesTheSameHandlerChain(t *testing.T) {
	fpm := phpfpmtest.Start(t, 4)
	root, marker := h2Site(t)
	logs := &logBuffer{}
	srv, addr, _ := startH2Server(t, logs, "--upstream", fpm, "--root", root, "--max-body", "1K")
	base := "https://" + addr
	c := h2Client()

	t.Run("ALPN", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: h2Domain, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN chose %q, want h2", p)
		}
	})

	t.Run("PHP page", func(t *testing.T) {
		resp, body := do(t, c, "POST", base+"/hello?x=1", strings.NewReader("a=b"), "Content-Type", "application/x-www-form-urlencoded")
		want := "HTTP/2.0 https=on remote=127.0.0.1 host=" + h2Domain + " uri=/hello?x=1 body=a=b"
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || body != want {
			t.Fatalf("%s %d %q, want HTTP/2 200 %q", resp.Proto, resp.StatusCode, body, want)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
	})

	t.Run("static file", func(t *testing.T) {
		const path = "/build/assets/app-3f2a1b.css"
		// identity: the file as it is (Go's client would otherwise ask for gzip and unpack it
		// itself); compression over h2 is checked below.
		resp, body := do(t, c, "GET", base+path, nil, "Accept-Encoding", "identity")
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || len(body) != 1700 || etag == "" || resp.ContentLength != 1700 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
			t.Fatalf("%d len %d etag %q cl %d type %q", resp.StatusCode, len(body), etag, resp.ContentLength, resp.Header.Get("Content-Type"))
		}
		if resp, body := do(t, c, "GET", base+path, nil, "If-None-Match", etag, "Accept-Encoding", "identity"); resp.StatusCode != 304 || body != "" {
			t.Errorf("If-None-Match: %d %q, want 304 and no body", resp.StatusCode, body)
		}
		if resp, _ := do(t, c, "GET", base+path, nil, "Accept-Encoding", "br"); resp.Header.Get("Content-Encoding") != "br" || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding: br over h2: Content-Encoding %q, Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
		if resp, body := do(t, c, "GET", base+path, nil, "Range", "bytes=5-9"); resp.StatusCode != 206 || body != "color" || resp.Header.Get("Content-Range") != "bytes 5-9/1700" {
			t.Errorf("Range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
		}
		if resp, body := do(t, c, "HEAD", base+path, nil); resp.StatusCode != 200 || body != "" || resp.ContentLength != 1700 {
			t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
	})

	t.Run("headers as over HTTP/1.1", func(t *testing.T) {
		const css = "/build/assets/app-3f2a1b.css"
		etag := ""
		for _, rq := range []struct {
			method, path string
			hdr          []string
		}{
			{"GET", "/cookies", nil},
			{"GET", css, nil},
			{"HEAD", css, nil},
			{"GET", css, []string{"If-None-Match", "etag"}},
			{"GET", css, []string{"Range", "bytes=0-3"}},
			{"GET", "/apps/1/channels", nil}, // unsigned: 401 JSON
			{"GET", "/x", []string{"Host", "attacker.example"}},
		} {
			hdr := slices.Clone(rq.hdr)
			if len(hdr) == 2 && hdr[1] == "etag" {
				hdr[1] = etag
			}
			r1 := sameAsH1(t, c, rq.method, base+rq.path, hdr...)
			if rq.path == css && etag == "" {
				etag = r1.Header.Get("ETag")
			}
		}
	})

	t.Run("signed API", func(t *testing.T) {
		body := []byte(`{"name":"e","channel":"news","data":"{}"}`)
		q := pusher.SignAPIRequest("key1", "secret1", "POST", "/apps/1/events", nil, body, time.Now())
		resp, got := do(t, c, "POST", base+"/apps/1/events?"+q.Encode(), bytes.NewReader(body), "Content-Type", "application/json")
		if resp.StatusCode != 200 || got != "{}\n" {
			t.Fatalf("signed publish: %d %q", resp.StatusCode, got)
		}
		q.Set("auth_signature", strings.Repeat("0", 64))
		if resp, got := do(t, c, "POST", base+"/apps/1/events?"+q.Encode(), bytes.NewReader(body)); resp.StatusCode != 401 {
			t.Fatalf("bad signature: %d %q", resp.StatusCode, got)
		}
	})

	t.Run("413", func(t *testing.T) {
		resp, _ := do(t, c, "POST", base+"/upload", bytes.NewReader(make([]byte, 4096)))
		if resp.StatusCode != 413 {
			t.Fatalf("body over --max-body: %d, want 413", resp.StatusCode)
		}
		// Without a length (an HTTP/2 body needs none), the limit still holds as it arrives.
		resp, _ = do(t, c, "POST", base+"/upload", io.MultiReader(bytes.NewReader(make([]byte, 4096))))
		if resp.StatusCode != 413 {
			t.Fatalf("unsized body over --max-body: %d, want 413", resp.StatusCode)
		}
	})

	t.Run("421 for another Host", func(t *testing.T) {
		for _, path := range []string{"/", "/apps/1/channels"} {
			if resp, body := do(t, c, "GET", base+path, nil, "Host", "attacker.example"); resp.StatusCode != 421 || strings.Contains(body, "HTTP/2.0") {
				t.Errorf("%s: %d %q, want 421", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("SSE arrives as written", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/events", nil)
		req.Host = h2Domain
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%s %q", resp.Proto, resp.Header.Get("Content-Type"))
		}
		r := bufio.NewReader(resp.Body)
		// The script waits for the marker file after the first event: reading it here, before
		// the marker exists, proves it was sent before the script ended.
		if line, err := r.ReadString('\n'); err != nil || line != "data: first\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if err != nil || string(rest) != "\ndata: second\n\n" {
			t.Fatalf("rest: %q %v", rest, err)
		}
	})

	t.Run("access log", func(t *testing.T) {
		do(t, c, "GET", base+"/logged-over-h2?token=s3cret", nil)
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"/logged-over-h2"`) {
				if !strings.Contains(l, `"status":200`) || strings.Contains(l, "s3cret") {
					t.Errorf("access log line: %s", l)
				}
				return
			}
		}
		t.Errorf("no access log line for the HTTP/2 request in:\n%s", logs.String())
	})

	t.Run("HTTP/1.1 on the same port", func(t *testing.T) {
		resp, body := do(t, h1Client(), "GET", base+"/hello", nil)
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 || !strings.HasPrefix(body, "HTTP/1.1 https=on") {
			t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
		}
	})

	t.Run("wss on the same port", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: clientTLS(), HandshakeTimeout: 10 * time.Second}
		ws, _, err := d.Dial("wss://"+addr+"/app/key1?protocol=7&client=go&version=1", http.Header{"Host": {h2Domain}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if ev := readEvent(t, ws); ev.Event != "pusher:connection_established" {
			t.Fatalf("first event %+v", ev)
		}
		// A pong proves the socket is read (and waits out its adoption: closing the socket
		// while ws.Adopt still runs trips a data race inside pusher/internal/ws).
		ping(t, ws)
	})

	t.Run("metrics", func(t *testing.T) {
		if n := testutil.ToFloat64(srv.metrics.h2Conns); n < 1 {
			t.Errorf("frontdoor_http2_connections = %v with a client connected", n)
		}
	})
}

// sameAsH1 sends the request over HTTP/1.1 and over HTTP/2 (with c) and fails unless status,
// header fields and body are the same, but for the request id (and the error pages that name
// it), Date's value and HTTP/1.1's Connection. It returns the HTTP/1.1 response.
func sameAsH1(t *testing.T, c *http.Client, method, u string, hdr ...string) *http.Response {
	t.Helper()
	r1, b1 := do(t, h1Client(), method, u, nil, hdr...)
	r2, b2 := do(t, c, method, u, nil, hdr...)
	b1 = strings.ReplaceAll(b1, r1.Header.Get("X-Request-Id"), "ID")
	b2 = strings.ReplaceAll(b2, r2.Header.Get("X-Request-Id"), "ID")
	h1, h2 := r1.Header.Clone(), r2.Header.Clone()
	for _, h := range []http.Header{h1, h2} {
		h.Del("X-Request-Id")
		// The current date, not one the upstream sent (fasthttp replaces it).
		if d, err := http.ParseTime(h.Get("Date")); err != nil || time.Since(d).Abs() > time.Hour {
			t.Errorf("%s %s: Date %q", method, u, h.Get("Date"))
		}
		h.Del("Date")
	}
	h1.Del("Connection")
	if r2.ProtoMajor != 2 || r1.StatusCode != r2.StatusCode || !reflect.DeepEqual(h1, h2) || b1 != b2 {
		t.Errorf("%s %s %v:\n HTTP/1.1 %d %v %q\n HTTP/2   %d %v %q", method, u, hdr, r1.StatusCode, h1, b1, r2.StatusCode, h2, b2)
	}
	return r1
}

// TestHTTP2HeadersFromAnHTTPUpstream: what an HTTP upstream answers reaches an HTTP/2 client with
// the header fields an HTTP/1.1 client gets: no Content-Type invented for 204 and 304 but
// fasthttp's default for a body without one, every Set-Cookie, the upstream's own Date replaced
// as fasthttp replaces it, a streamed body of unknown length.
func TestHTTP2HeadersFromAnHTTPUpstream(t *testing.T) {
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = nil // no sniffing: the response has no Content-Type
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			h.Set("ETag", `"v1"`)
			w.WriteHeader(304)
		case "/cookies":
			h.Add("Set-Cookie", "a=1; Path=/")
			h.Add("Set-Cookie", "b=2; Path=/; HttpOnly")
			h.Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
			io.WriteString(w, "untyped body")
		case "/stream":
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "data: 2\n\n")
		}
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(uln)
	t.Cleanup(func() { up.Close() })
	_, addr, _ := startH2Server(t, nil, "--upstream", "http://"+uln.Addr().String())
	c := h2Client()
	for _, p := range []string{"/204", "/304", "/cookies", "/stream"} {
		sameAsH1(t, c, "GET", "https://"+addr+p)
	}
	sameAsH1(t, c, "HEAD", "https://"+addr+"/cookies")
}

// rawH2 is a hand-driven HTTP/2 client connection: the preface and SETTINGS sent, frames read
// and written directly.
type rawH2 struct {
	conn *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: h2Domain, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r := &rawH2{conn: conn, fr: http2.NewFramer(conn, conn)}
	r.enc = hpack.NewEncoder(&r.hbuf)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	return r
}

// headerBlock encodes a GET for path plus extra fields.
func (r *rawH2) headerBlock(path string, extra ...hpack.HeaderField) []byte {
	r.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: h2Domain}, {Name: ":path", Value: path},
	}, extra...) {
		_ = r.enc.WriteField(f)
	}
	return bytes.Clone(r.hbuf.Bytes())
}

// TestHTTP2RapidResetBurst: a client that opens streams and resets them at once, faster than
// their handlers finish (CVE-2023-44487), is cut off with GOAWAY ENHANCE_YOUR_CALM once the
// handlers and the queue behind them are full, the refusal is counted, and the server goes on
// serving other connections, also while those handlers are still busy.
func TestHTTP2RapidResetBurst(t *testing.T) {
	// An upstream that holds every request until the test ends, so handlers pile up.
	release := make(chan struct{})
	var held sync.WaitGroup
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		defer held.Done()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slow.Serve(uln)
	t.Cleanup(func() { close(release); slow.Close() })
	root, _ := h2Site(t)
	srv, addr, _ := startH2Server(t, nil, "--upstream", "http://"+uln.Addr().String(), "--root", root)

	// A well-behaved client connected before the burst.
	c := h2Client()
	if resp, _ := do(t, c, "GET", "https://"+addr+"/build/assets/app-3f2a1b.css", nil); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}

	r := dialRawH2(t, addr)
	block := r.headerBlock("/slow")
	var goAway *http2.GoAwayFrame
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				readErr <- err
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				goAway = ga
				readErr <- nil
				return
			}
		}
	}()
	// 250 handlers run and wait for the upstream; 4×250 more queue; then GOAWAY. Writing
	// stops when the server has cut the connection.
	for id := uint32(1); id < 2*5000; id += 2 {
		if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break
		}
		if err := r.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
	}
	select {
	case err := <-readErr:
		if err != nil || goAway == nil || goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("burst connection: GOAWAY %v, read error %v; want GOAWAY ENHANCE_YOUR_CALM", goAway, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no GOAWAY after a rapid-reset burst")
	}
	if n := testutil.ToFloat64(srv.metrics.h2Errors.WithLabelValues("conn_ENHANCE_YOUR_CALM_too_many_early_resets")); n != 1 {
		t.Errorf("frontdoor_http2_errors_total{kind=conn_ENHANCE_YOUR_CALM_too_many_early_resets} = %v, want 1", n)
	}
	// The other connection and new ones are served meanwhile.
	if resp, _ := do(t, c, "GET", "https://"+addr+"/build/assets/app-3f2a1b.css", nil); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("existing connection after the burst: %d", resp.StatusCode)
	}
	if resp, _ := do(t, h2Client(), "GET", "https://"+addr+"/build/assets/app-3f2a1b.css", nil); resp.StatusCode != 200 {
		t.Fatalf("new connection after the burst: %d", resp.StatusCode)
	}
}

// TestHTTP2HeaderListOverLimit: a header list over the 16 KiB limit (the HTTP/1.1 listener's)
// gets 431, and the connection serves the next request; a single field over the limit ends the
// connection.
func TestHTTP2HeaderListOverLimit(t *testing.T) {
	root, _ := h2Site(t)
	_, addr, _ := startH2Server(t, nil, "--root", root)
	r := dialRawH2(t, addr)

	send := func(id uint32, block []byte) {
		// Split into frames of the default maximum size: HEADERS then CONTINUATION.
		const max = 16384
		first := block[:min(len(block), max)]
		rest := block[len(first):]
		if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}); err != nil {
			t.Fatal(err)
		}
		for len(rest) > 0 {
			n := min(len(rest), max)
			if err := r.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
	}
	dec := hpack.NewDecoder(4096, nil) // one for the connection: its table carries over
	status := func(id uint32) string {
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for stream %d: %v", id, err)
			}
			if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == id {
				fields, err := dec.DecodeFull(h.HeaderBlockFragment())
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fields {
					if f.Name == ":status" {
						return f.Value
					}
				}
			}
		}
	}
	// Three fields of 7 KiB: each fits, together they pass the limit.
	var many []hpack.HeaderField
	for i := range 3 {
		many = append(many, hpack.HeaderField{Name: fmt.Sprintf("x-big-%d", i), Value: strings.Repeat("a", 7<<10)})
	}
	send(1, r.headerBlock("/build/assets/app-3f2a1b.css", many...))
	if st := status(1); st != "431" {
		t.Fatalf("21 KiB of header fields: status %s, want 431", st)
	}
	send(3, r.headerBlock("/build/assets/app-3f2a1b.css", hpack.HeaderField{Name: "x-small", Value: strings.Repeat("a", 8<<10)}))
	if st := status(3); st != "200" {
		t.Fatalf("8 KiB header after the refusal: status %s, want 200", st)
	}

	// One field longer than the whole limit is not even decoded: the connection ends with
	// GOAWAY COMPRESSION_ERROR, and the server serves the next one.
	r2 := dialRawH2(t, addr)
	block := r2.headerBlock("/", hpack.HeaderField{Name: "x-huge", Value: strings.Repeat("a", 20<<10)})
	if err := r2.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := r2.fr.ReadFrame()
		if err != nil {
			t.Fatalf("20 KiB field: %v before GOAWAY", err)
		}
		if h, ok := f.(*http2.HeadersFrame); ok {
			t.Fatalf("20 KiB field answered: %v", h)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeCompression {
				t.Errorf("GOAWAY %v, want COMPRESSION_ERROR", g.ErrCode)
			}
			break
		}
	}
	if resp, _ := do(t, h2Client(), "GET", "https://"+addr+"/build/assets/app-3f2a1b.css", nil); resp.StatusCode != 200 {
		t.Fatalf("next connection: %d", resp.StatusCode)
	}
}

// TestHTTP2Off: --http2=false (tls.http2, FRONTDOOR_HTTP2) offers http/1.1 alone.
func TestHTTP2Off(t *testing.T) {
	root, _ := h2Site(t)
	_, addr, _ := startH2Server(t, nil, "--root", root, "--http2=false")
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: h2Domain, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN chose %q with --http2=false, want http/1.1", p)
	}
	if _, err := h2Client().Get("https://" + addr + "/build/assets/app-3f2a1b.css"); err == nil {
		t.Fatal("an HTTP/2-only client was served with --http2=false")
	}
	if resp, _ := do(t, h1Client(), "GET", "https://"+addr+"/build/assets/app-3f2a1b.css", nil); resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1: %d", resp.StatusCode)
	}
	for _, e := range [][]string{{"FRONTDOOR_HTTP2", "false"}} {
		s, err := load(t, []string{"--env-file", ""}, env(e...))
		if err != nil || s.TLS.HTTP2 {
			t.Errorf("%s=%s: HTTP2 %v, err %v", e[0], e[1], s.TLS.HTTP2, err)
		}
	}
	yml := writeFile(t, "fd.yaml", "tls:\n  http2: false\n")
	if s, err := load(t, []string{"--env-file", "", "--config", yml}, env()); err != nil || s.TLS.HTTP2 {
		t.Errorf("tls.http2: false in YAML: HTTP2 %v, err %v", s.TLS.HTTP2, err)
	}
}

// TestHTTP2UpstreamErrors: over HTTP/2, a PHP upstream that is down gets the same 502 page as
// over HTTP/1.1.
func TestHTTP2UpstreamErrors(t *testing.T) {
	root, _ := h2Site(t)
	_, addr, _ := startH2Server(t, nil, "--root", root, "--upstream", "fastcgi://"+freeAddr(t))
	for _, c := range []*http.Client{h2Client(), h1Client()} {
		resp, body := do(t, c, "GET", "https://"+addr+"/page", nil)
		if resp.StatusCode != 502 || !strings.Contains(body, "<h1>Bad Gateway</h1>") {
			t.Errorf("%s: %d %q, want the 502 page", resp.Proto, resp.StatusCode, body)
		}
	}
}

// TestHTTP2ShutdownDrains: on shutdown (SIGTERM, or the old process of `frontdoor restart`), an
// HTTP/2 request in flight finishes, and the connection is told GOAWAY instead of being cut.
func TestHTTP2ShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(uln)
	t.Cleanup(func() { up.Close() })
	_, addr, stop := startH2Server(t, nil, "--upstream", "http://"+uln.Addr().String(), "--shutdown-timeout", "30s")

	c := h2Client()
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "https://"+addr+"/slow", nil)
		req.Host = h2Domain
		resp, err := c.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-started:
	case r := <-res:
		t.Fatalf("request ended before reaching the upstream: %d %q %v", r.status, r.body, r.err)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(300 * time.Millisecond) // let the GOAWAY go out before the handler finishes
	close(release)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("request in flight during shutdown: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop after its last stream ended")
	}
	if _, err := h2Client().Get("https://" + addr + "/"); err == nil {
		t.Fatal("served after shutdown")
	}
}
