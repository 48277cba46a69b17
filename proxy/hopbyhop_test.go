package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// startRawUpstream is an HTTP/1.1 server on loopback that answers every request on a kept
// connection (closed after the first answer with closeAfter) with response as written (header
// names in the case given, a body as long or short as given), and sends each request
// head it read, one header line per element, on the returned channel. Unlike net/http it
// neither canonicalizes names nor drops what it considers hop-by-hop, so a test sees exactly
// what frontdoor forwarded and controls exactly what frontdoor receives.
func startRawUpstream(t *testing.T, response string, closeAfter bool) (string, <-chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads := make(chan []string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head []string
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line = strings.TrimRight(line, "\r\n"); line == "" {
							break
						}
						head = append(head, line)
					}
					heads <- head
					if _, err := c.Write([]byte(response)); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), heads
}

// TestHTTPUpstreamHopByHopHeadersDropped: hop-by-hop headers (RFC 9110 §7.6.1), and the headers
// a Connection header names, go no further in either direction, whatever case they are written
// in: an HTTP upstream's response headers keep the upstream's case (Node and Go's HTTP/2 side
// send them lower-case), and a lower-case keep-alive or connection must not pass to the client
// when the canonical one would not.
func TestHTTPUpstreamHopByHopHeadersDropped(t *testing.T) {
	up, heads := startRawUpstream(t, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/plain\r\n"+
		"Content-Length: 2\r\n"+
		"connection: x-upstream-hop\r\n"+
		"x-upstream-hop: secret\r\n"+
		"keep-alive: timeout=5\r\n"+
		"proxy-connection: keep-alive\r\n"+
		"upgrade: h2c\r\n"+
		"X-Kept: yes\r\n"+
		"\r\nok", false)
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 { // twice on the same connections: the pass must not depend on a fresh header
		if _, err := c.Write([]byte("GET /x HTTP/1.1\r\nHost: shop.test\r\n" +
			"Connection: X-Secret-Hop, keep-alive\r\nX-Secret-Hop: 1\r\nKeep-Alive: 300\r\nTe: trailers\r\n" +
			"Proxy-Connection: keep-alive\r\nproxy-authorization: Basic eDp5\r\nX-Custom: kept\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		head := <-heads
		got := map[string]string{}
		for _, l := range head[1:] {
			k, v, _ := strings.Cut(l, ":")
			got[strings.ToLower(k)] = strings.TrimSpace(v)
		}
		for _, k := range []string{"connection", "x-secret-hop", "keep-alive", "te", "proxy-connection", "proxy-authorization"} {
			if v, ok := got[k]; ok {
				t.Errorf("request %d: %s: %q reached the upstream", i, k, v)
			}
		}
		if got["x-custom"] != "kept" || got["host"] != "shop.test" {
			t.Errorf("request %d: upstream saw %q", i, head)
		}
		for _, k := range []string{"X-Upstream-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
			if v := resp.Header.Values(k); len(v) > 0 {
				t.Errorf("response %d: %s: %q reached the client", i, k, v)
			}
		}
		if c := resp.Header.Get("Connection"); strings.Contains(strings.ToLower(c), "x-upstream-hop") {
			t.Errorf("response %d: Connection: %q reached the client", i, c)
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("response %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
}

// TestHTTPUpstreamShortBodyIs502: an upstream that announces a small body and breaks off before
// its end gives the client a 502 page, not a 200 whose body stops short (a small body is read
// whole before the answer starts).
func TestHTTPUpstreamShortBodyIs502(t *testing.T) {
	up, _ := startRawUpstream(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"+
		strings.Repeat("x", 50), true)
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	resp, err := client.Get(front + "/page")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || err != nil || strings.Contains(string(b), "xxxxx") {
		t.Fatalf("%d %v %.80q, want a whole 502 page", resp.StatusCode, err, b)
	}
}

// TestHTTPUpstreamSmallBodyWithPooledBuffers: a small body is read whole through the buffers
// the FastCGI side shares, which it puts back emptied (length 0); reading into one as it came
// would read nothing forever.
func TestHTTPUpstreamSmallBodyWithPooledBuffers(t *testing.T) {
	up := startBenchUpstream(t)
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for range 16 {
		b := make([]byte, 0, fcgiHeaderLen+fcgiChunk)
		chunkPool.Put(&b)
	}
	done := make(chan string, 1)
	go func() {
		var ctx fasthttp.RequestCtx
		for range 16 {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.SetRequestURI("/page")
			ctx.Request.Header.SetHost("app.test")
			h.ServeHTTP(&ctx)
		}
		done <- fmt.Sprintf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}()
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "200 <!doctype html><p>hello from the app") {
			t.Fatalf("answered %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a small upstream body was still being read after 10 s")
	}
}
