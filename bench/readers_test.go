package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// A minimal Pusher-speaking server built on the WebSocket library's own server side, to check
// that detached sockets read by the epoll loops see exactly what a library client would:
// text messages, fragmented messages, control pings (answered with pongs), pusher:ping (answered
// with pusher:pong) and the server's close.
func TestReaderGroupInterop(t *testing.T) {
	pongs := make(chan string, 4)
	release := make(chan struct{})
	up := websocket.Upgrader{WriteBufferSize: 128} // small buffer: long messages go out fragmented
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error { pongs <- "control:" + s; return nil })
		c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":30}"}`))
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}"}`))
		<-release
		c.WriteMessage(websocket.TextMessage, []byte(`{"event":"bench","channel":"c","data":"B1 0 1 2 x"}`))
		c.WriteMessage(websocket.TextMessage, []byte(`{"event":"bench","channel":"c","data":"`+strings.Repeat("z", 1000)+`"}`))
		c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
		c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:ping","data":"{}"}`))
		done := make(chan struct{})
		go func() { // pongs and the close echo arrive while the handler waits below
			defer close(done)
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				pongs <- string(msg)
			}
		}()
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4200, "bye"), time.Now().Add(time.Second))
		select { // the client answers the close; bounded so a broken client cannot hang the test
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()

	tg := Target{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), AppID: "1", Key: "k", Secret: "s"}
	e, err := tg.endpoint()
	if err != nil {
		t.Fatal(err)
	}
	ws := newWSClient(e, false, 1)
	c, err := ws.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.socketID != "1.2" {
		t.Fatalf("socket id %q", c.socketID)
	}
	if _, err := c.subscribe("c", "", "", time.Second, nil); err != nil {
		t.Fatal(err)
	}
	g := newReaderGroup(e)
	if len(g.loops) == 0 {
		t.Fatal("no epoll loops on a plain TCP target")
	}
	var mu sync.Mutex
	var msgs []string
	closed := make(chan error, 1)
	g.start(c, func(m []byte) {
		mu.Lock()
		msgs = append(msgs, string(m))
		mu.Unlock()
	}, func(err error) { closed <- err })
	close(release)
	select {
	case err := <-closed:
		if !errors.Is(err, errServerClose) || !strings.Contains(err.Error(), "4200") {
			t.Fatalf("close reported as %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server close not seen")
	}
	g.stop()
	mu.Lock()
	defer mu.Unlock()
	if len(msgs) != 2 || !strings.Contains(msgs[0], "B1 0 1 2 x") || !strings.Contains(msgs[1], strings.Repeat("z", 1000)) {
		t.Fatalf("messages %q", msgs)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case p := <-pongs:
			got[p] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("pongs seen: %v", got)
		}
	}
	if !got["control:hi"] || !got[string(pongFrame)] {
		t.Fatalf("pongs %v", got)
	}
}
