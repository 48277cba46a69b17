package pusher

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAcceptKey: the example of RFC 6455 §1.3, and a key too long for the stack buffer.
func TestAcceptKey(t *testing.T) {
	var got [28]byte
	acceptKey(got[:], []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	if string(got[:]) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
	long := bytes.Repeat([]byte("k"), 500)
	sum := sha1.Sum(append(append([]byte(nil), long...), websocketGUID...))
	acceptKey(got[:], long)
	if want := base64.StdEncoding.EncodeToString(sum[:]); string(got[:]) != want {
		t.Fatalf("long key: accept %q, want %q", got, want)
	}
}

// hasTokenRef is the plain reading of a comma-separated, case-insensitive token list.
func hasTokenRef(v, tok string) bool {
	for _, e := range strings.Split(v, ",") {
		if strings.EqualFold(strings.Trim(e, " \t"), tok) && len(strings.Trim(e, " \t")) == len(tok) {
			return true
		}
	}
	return false
}

func TestHasToken(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"Upgrade", true}, {"upgrade", true}, {"keep-alive, Upgrade", true}, {"keep-alive,\tUPGRADE ", true},
		{"Upgrade,,", true}, {"upgrades", false}, {"pre-upgrade", false}, {"", false}, {",", false},
		{"keep-alive", false}, {"up grade", false}, {"upgrad", false},
	} {
		if got := hasToken([]byte(c.v), "upgrade"); got != c.want || got != hasTokenRef(c.v, "upgrade") {
			t.Errorf("hasToken(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

// FuzzHasToken holds hasToken to the plain reading of the header grammar.
func FuzzHasToken(f *testing.F) {
	for _, s := range []string{"Upgrade", "keep-alive, Upgrade", " websocket\t", "WebSocket,x", "", ",,", "ſ", "upgrade\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, tok := range []string{"upgrade", "websocket", "13"} {
			// EqualFold folds Unicode (ſ is s, K is k): the header grammar is ASCII, so only
			// ASCII inputs are compared with the reference.
			ascii := true
			for i := range len(v) {
				if v[i] >= 0x80 {
					ascii = false
				}
			}
			got := hasToken([]byte(v), tok)
			if ascii && got != hasTokenRef(v, tok) {
				t.Fatalf("hasToken(%q, %q) = %v, reference %v", v, tok, got, !got)
			}
			if !ascii && got && !hasTokenRef(v, tok) {
				t.Fatalf("hasToken(%q, %q) true, reference false", v, tok)
			}
		}
	})
}

// TestHandshakeHTTPRefusals: a handshake the server cannot accept gets the HTTP status
// fasthttp/websocket gave it (405, 400) with Sec-WebSocket-Version: 13 (RFC 6455 §4.4), and its
// reservation against the caps is given back.
func TestHandshakeHTTPRefusals(t *testing.T) {
	ts := startServer(t, oneApp())
	const good = "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
	for _, c := range []struct {
		name, req string
		status    int
	}{
		{"post", "POST /app/key1?protocol=7 HTTP/1.1\r\n" + good + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", 405},
		{"no key", "GET /app/key1?protocol=7 HTTP/1.1\r\n" + good + "Sec-WebSocket-Version: 13\r\n\r\n", 400},
		{"version 8", "GET /app/key1?protocol=7 HTTP/1.1\r\n" + good + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 400},
		{"no upgrade token", "GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 426},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(nc, c.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status != 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("Sec-WebSocket-Version %q, want 13", resp.Header.Get("Sec-WebSocket-Version"))
			}
			if n := ts.srv.conns.Load(); n != 0 {
				t.Errorf("%d connections still reserved after the refusal", n)
			}
		})
	}
	// And a good one, with the accept key of RFC 6455 §1.3.
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET /app/key1?protocol=7 HTTP/1.1\r\n"+good+"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("101 response %d %v", resp.StatusCode, resp.Header)
	}
}
