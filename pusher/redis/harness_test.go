package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// redisServer is a real redis-server on a loopback port, started and stopped by the test.
type redisServer struct {
	t      testing.TB
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Missing(t, "redis-server", "not on PATH", "apt-get install redis-server")
	}
	r := &redisServer{t: t, dir: t.TempDir()}
	t.Cleanup(r.stop)
	// redis-server binds the port itself, so a free port picked here can be taken by another
	// process before it does: then it exits, and another free port is tried.
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if r.tryStart() {
			return r
		}
	}
	t.Fatal("redis-server did not start on five free ports (see redis.log in the test's directory)")
	return nil
}

// start runs redis-server again on its port (tests that restart it); the port must still be free.
func (r *redisServer) start() {
	r.t.Helper()
	if !r.tryStart() {
		r.t.Fatalf("redis-server did not start again on port %d", r.port)
	}
}

// tryStart runs redis-server without persistence (a restart loses every key, the worst case the
// brokers must recover from) and waits until it answers. It reports false when the process
// exited first (its port was taken). The answer must come from this process: the server's
// process_id is checked, so a redis-server of another test on a reused port is never mistaken
// for ours.
func (r *redisServer) tryStart() bool {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.SysProcAttr = testenv.DieWithParent()
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	cmd := r.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
	r.exited = exited
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	defer c.Close()
	want := "process_id:" + strconv.Itoa(cmd.Process.Pid) + "\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			r.cmd = nil
			return false
		default:
		}
		if info, err := c.Info(context.Background(), "server").Result(); err == nil && strings.Contains(info, want) {
			return true
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not answer in 10 s", r.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	appID  = "app1"
	appKey = "key1"
	secret = "secret1"
)

// node is one frontdoor node: a pusher.Server with a Redis broker behind a real fasthttp
// listener on loopback, routed as cmd/frontdoor routes it.
type node struct {
	t      testing.TB
	srv    *pusher.Server
	broker *Broker
	addr   string
	ln     net.Listener
}

func startNode(t testing.TB, redisURL string, mod ...func(*pusher.AppConfig)) *node {
	t.Helper()
	return startNodeWith(t, redisURL, nil, mod...)
}

// startNodeWith is startNode with the server's broker wrapped by wrap (when not nil): a test
// that makes one broker call fail or wait at a moment it chooses, Redis doing the rest.
func startNodeWith(t testing.TB, redisURL string, wrap func(*Broker) pusher.Broker, mod ...func(*pusher.AppConfig)) *node {
	t.Helper()
	// 1 s heartbeats: a node is declared dead after 3 s of silence. Short for the tests, and a
	// live node starved that long by a loaded CI machine (the whole suite under -race on two
	// cores) is rare. With 500 ms, a false death is the likeliest cause of one CI failure.
	b, err := New(Config{URL: redisURL, Prefix: "test", Heartbeat: time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	app := pusher.AppConfig{ID: appID, Key: appKey, Secret: secret, AcceptClientEventsFrom: "members"}
	for _, m := range mod {
		m(&app)
	}
	var pb pusher.Broker = b
	if wrap != nil {
		pb = wrap(b)
	}
	s, err := pusher.NewServer(pusher.Config{Apps: []pusher.AppConfig{app}, Broker: pb}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{
		KeepHijackedConns: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if strings.HasPrefix(string(ctx.Path()), "/apps/") {
				s.HandleAPI(ctx)
			} else {
				s.HandleWebSocket(ctx)
			}
		},
	}
	go func() { _ = hs.Serve(ln) }()
	n := &node{t: t, srv: s, broker: b, addr: ln.Addr().String(), ln: ln}
	t.Cleanup(n.shutdown)
	eventually(t, 10*time.Second, "node joined the cluster", func() bool { return b.Healthy() == nil })
	return n
}

// rebuilt reports that the node's broker is healthy with no presence rebuild due or running.
func (n *node) rebuilt() bool {
	b := n.broker
	if b.Healthy() != nil || b.resyncDue.Load() || !b.resyncMu.TryLock() {
		return false
	}
	b.resyncMu.Unlock()
	return true
}

// shutdown is a graceful stop: sockets told to reconnect, members left, node unregistered.
func (n *node) shutdown() {
	if n.ln == nil {
		return
	}
	n.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	n.ln = nil
}

// crash stops the node the way a killed process would: no goodbye to Redis, heartbeats stop,
// no time to deliver webhooks. Its sockets are cut without their Leave reaching Redis.
func (n *node) crash() {
	n.broker.cancel()
	_ = n.broker.ps.Close()
	n.broker.wg.Wait()
	_ = n.broker.rdb.Close()
	n.ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time at all
	_ = n.srv.Shutdown(ctx)
	n.ln = nil
}

type client struct {
	t        testing.TB
	c        *websocket.Conn
	socketID string
}

type frame struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	Data    string `json:"data"`
	UserID  string `json:"user_id"`
}

func (n *node) connect() *client {
	n.t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+n.addr+"/app/"+appKey+"?protocol=7&client=go&version=1", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	cl := &client{t: n.t, c: c}
	f := cl.read()
	var d struct {
		SocketID string `json:"socket_id"`
	}
	if f.Event != "pusher:connection_established" || json.Unmarshal([]byte(f.Data), &d) != nil {
		n.t.Fatalf("first frame %+v", f)
	}
	cl.socketID = d.SocketID
	return cl
}

// connectRefused dials and returns the pusher:error code the server refused with.
func (n *node) connectRefused() int {
	n.t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+n.addr+"/app/"+appKey+"?protocol=7&client=go&version=1", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	cl := &client{t: n.t, c: c}
	f := cl.read()
	if f.Event != "pusher:error" {
		return 0
	}
	var d struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal([]byte(f.Data), &d)
	return d.Code
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.c.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read() frame {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.c.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(msg, &f); err != nil {
		c.t.Fatalf("non-JSON frame %q", msg)
	}
	return f
}

// expectNothing proves nothing is queued for the client: a ping's pong comes first.
func (c *client) expectNothing() {
	c.t.Helper()
	c.send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
	if f := c.read(); f.Event != "pusher:pong" {
		c.t.Fatalf("unexpected frame %+v", f)
	}
}

func (c *client) expect(event, channel string) frame {
	c.t.Helper()
	f := c.read()
	if f.Event != event || f.Channel != channel {
		c.t.Fatalf("want %s on %s, got %+v", event, channel, f)
	}
	return f
}

func (c *client) subscribe(channel, channelData string) frame {
	c.t.Helper()
	d := map[string]string{"channel": channel}
	if strings.HasPrefix(channel, "private-") || strings.HasPrefix(channel, "presence-") {
		d["auth"] = pusher.ChannelAuth(appKey, secret, c.socketID, channel, channelData)
	}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	c.send(map[string]any{"event": "pusher:subscribe", "data": d})
	return c.expect("pusher_internal:subscription_succeeded", channel)
}

func member(id string) string {
	return fmt.Sprintf(`{"user_id":%q,"user_info":{"name":"user %s"}}`, id, id)
}

// api calls a node's HTTP API signed as the PHP SDK signs.
func (n *node) api(method, path, body string) (int, map[string]any) {
	n.t.Helper()
	st, _, out := n.apiHeader(method, path, body)
	return st, out
}

// apiHeader is api with the response's headers.
func (n *node) apiHeader(method, path, body string) (int, http.Header, map[string]any) {
	n.t.Helper()
	path, rawQuery, _ := strings.Cut(path, "?")
	params, _ := url.ParseQuery(rawQuery)
	q := pusher.SignAPIRequest(appKey, secret, method, path, params, []byte(body), time.Now())
	req, _ := http.NewRequest(method, "http://"+n.addr+path+"?"+q.Encode(), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		n.t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out
}

func (n *node) publish(channel, event, data, socketID string) {
	n.t.Helper()
	body, _ := json.Marshal(map[string]string{"name": event, "channel": channel, "data": data, "socket_id": socketID})
	if st, out := n.api("POST", "/apps/"+appID+"/events", string(body)); st != 200 {
		n.t.Fatalf("publish: %d %v", st, out)
	}
}
