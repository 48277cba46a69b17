package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// startRawUpstream is an HTTP/1.1 server on loopback that answers every request on a kept
// connection with response as written (header names in the case given), and sends each request
// head it read, one header line per element, on the returned channel. Unlike net/http it
// neither canonicalizes names nor drops what it considers hop-by-hop, so a test sees exactly
// what frontdoor forwarded and controls exactly what frontdoor receives.
func startRawUpstream(t *testing.T, response string) (string, <-chan []string) {
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
					if _, err := c.Write([]byte(response)); err != nil {
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
		"\r\nok")
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
