package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// TestWebSocketTunnel: an upgrade on a non-Pusher path reaches the HTTP upstream's own
// WebSocket server through frontdoor, messages flow both ways, and a refusal comes back as is.
func TestWebSocketTunnel(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no socket for you", http.StatusForbidden)
			return
		}
		seen <- r.Header.Clone()
		u := websocket.Upgrader{Subprotocols: []string{"chat"}, CheckOrigin: func(*http.Request) bool { return true }}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	h, err := New(Config{Upstreams: []string{up}, ReadTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	wsURL := "ws" + strings.TrimPrefix(front, "http") + "/live/chat?room=1"

	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"chat"}}
	c, resp, err := d.Dial(wsURL, http.Header{"Origin": {"http://app.test"}})
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer c.Close()
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	hdr := <-seen
	if hdr.Get("X-Forwarded-For") != "127.0.0.1" || hdr.Get("X-Forwarded-Proto") != "http" || hdr.Get("Origin") != "http://app.test" {
		t.Errorf("upstream saw %v", hdr)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []string{"hello", strings.Repeat("big ", 50000)} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo: "+m {
			t.Fatalf("got %.40q %v", got, err)
		}
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if mt, got, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(got) != "echo: \x00\x01\x02" {
		t.Fatalf("binary: %d %q %v", mt, got, err)
	}

	_, resp, err = d.Dial("ws"+strings.TrimPrefix(front, "http")+"/forbidden", nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("refused upgrade: %v %v", err, resp)
	}
}
