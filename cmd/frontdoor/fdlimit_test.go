package main

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Running out of descriptors is load, not failure: with a low `ulimit -n`, more idle TCP
// connections than descriptors must not stop the process (fasthttp's accept loop used to return
// on EMFILE and frontdoor shut down); the extra clients are refused with a 503, and once the
// connections close the server accepts WebSockets again.
func TestOutOfDescriptorsKeepsServing(t *testing.T) {
	const limit = 200
	addr, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command("sh", "-c", `ulimit -n `+strconv.Itoa(limit)+` && exec "$0" "$@"`, frontdoorBin(t),
		"serve", "--listen", addr, "--admin", admin, "--app-id", "1", "--app-key", "key1", "--app-secret", "secret1")
	p := startCommand(t, t.TempDir(), cmd)
	p.waitLog(t, `"admin listening"`)
	p.waitLog(t, `"nofile":`+strconv.Itoa(limit))

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Idle connections up to the limit, then clients that ask for a page as browsers do: the
	// ones past the limit are accepted on the reserve descriptor and answered 503.
	for range limit {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	p.waitLog(t, "out of file descriptors")
	answers := make(chan string, 20)
	for range cap(answers) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		go func() {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 4096))
			answers <- string(b)
		}()
	}
	refused := 0
	for range cap(answers) {
		if a := <-answers; strings.HasPrefix(a, "HTTP/1.1 503 ") && strings.Contains(a, "Over capacity") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no connection past the descriptor limit was answered 503")
	}
	select {
	case <-p.done:
		t.Fatalf("frontdoor exited (%v) when it ran out of descriptors", p.err)
	default:
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// The server notices the closes asynchronously; until then new dials may still be shed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/key1?protocol=7", nil)
		if err == nil {
			ev := readEvent(t, c)
			c.Close()
			if ev.Event != "pusher:connection_established" {
				t.Fatalf("first event = %+v", ev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WebSocket accepted after the connections closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"frontdoor_accept_exhausted_total", "frontdoor_connections_shed_total"} {
		line := grepLines(string(body), m+" ")
		if line == "" || strings.HasSuffix(strings.TrimSpace(line), " 0") {
			t.Errorf("metric %s not counted: %q", m, line)
		}
	}
}
